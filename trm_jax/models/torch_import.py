"""Import weights of a `tiny-recursive-model` (PyTorch) TinyRecursiveModel + MLPMixer1D.

Works on the state dict alone (tensors or NumPy arrays), so torch is needed only to read the file:

    sd = torch.load("trm.pt", map_location="cpu", weights_only=True)
    cfg = config_from_torch_state_dict(sd)             # dims inferred from the tensors
    params = from_torch_state_dict(sd)
    model = create_model(cfg, seq_len=cfg_seq_len)      # seq_len = mixer seq_len - num_register_tokens
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from trm_jax.config import ModelConfig
from trm_jax.errors import TRMError


def _np(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy()
    return np.asarray(t, dtype=np.float32)


def _strip_prefix(sd: Mapping[str, Any]) -> dict:
    """Accept state dicts saved from wrappers (DDP `module.`, EMA `ema_model.`)."""
    sd = dict(sd)
    for prefix in ("module.", "ema_model.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _mixer_depth(sd: Mapping[str, Any]) -> int:
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"network\.(\d+)\.0\.norm\.weight$", k))}
    if not blocks or blocks != set(range(len(blocks))):
        raise TRMError("state dict has no MLPMixer1D blocks under 'network.<i>.0.norm.weight'; only "
                       "tiny-recursive-model checkpoints with an MLPMixer1D network can be imported")
    return len(blocks)


def config_from_torch_state_dict(state_dict: Mapping[str, Any], **overrides) -> tuple[ModelConfig, int]:
    """Infer (ModelConfig, seq_len) from a PyTorch state dict; seq_len excludes register tokens."""
    sd = _strip_prefix(state_dict)
    try:
        depth = _mixer_depth(sd)
        num_tokens, dim = _np(sd["input_embed.weight"]).shape
        num_registers = _np(sd["register_tokens"]).shape[0] if "register_tokens" in sd else 0
        token_hidden, mixer_len = _np(sd["network.0.0.fn.0.weight"]).shape[:2]
        channel_hidden = _np(sd["network.0.1.fn.0.weight"]).shape[0]
    except KeyError as e:
        raise TRMError(f"state dict is missing {e}; is this a tiny-recursive-model TinyRecursiveModel?") from None
    cfg = dict(network="mixer", dim=int(dim), depth=depth, num_tokens=int(num_tokens),
               num_register_tokens=int(num_registers), expansion_factor=token_hidden / dim,
               expansion_factor_token=channel_hidden / dim)
    cfg.update(overrides)
    return ModelConfig(**cfg), int(mixer_len - num_registers)


def from_torch_state_dict(state_dict: Mapping[str, Any]) -> dict:
    """Convert a PyTorch TinyRecursiveModel(MLPMixer1D) state dict to our params pytree."""
    sd = _strip_prefix(state_dict)
    depth = _mixer_depth(sd)
    get = lambda k: _np(sd[k])  # noqa: E731
    try:
        net = {"final_norm": get(f"network.{depth}.weight")}
        for i in range(depth):
            tok, ch = f"network.{i}.0", f"network.{i}.1"
            net[f"block{i}_token_norm"] = get(f"{tok}.norm.weight")
            # Conv1d(kernel=1) weights are [out, in, 1]; ours are [in, out]
            net[f"block{i}_token_mixing"] = {
                "in_kernel": get(f"{tok}.fn.0.weight")[..., 0].T, "in_bias": get(f"{tok}.fn.0.bias"),
                "out_kernel": get(f"{tok}.fn.3.weight")[..., 0].T, "out_bias": get(f"{tok}.fn.3.bias")}
            net[f"block{i}_channel_norm"] = get(f"{ch}.norm.weight")
            net[f"block{i}_channel_mixing"] = {
                "in": {"kernel": get(f"{ch}.fn.0.weight").T, "bias": get(f"{ch}.fn.0.bias")},
                "out": {"kernel": get(f"{ch}.fn.3.weight").T, "bias": get(f"{ch}.fn.3.bias")}}
        params = {
            "input_embed": {"embedding": get("input_embed.weight")},
            "output_init_embed": get("output_init_embed"),
            "latent_init_embed": get("latent_init_embed"),
            "network": net,
            "to_pred": {"kernel": get("to_pred.weight").T},
            "to_halt_pred": {"kernel": get("to_halt_pred.1.weight").T},
        }
    except KeyError as e:
        raise TRMError(f"state dict is missing {e}; is this a tiny-recursive-model TinyRecursiveModel?") from None
    if "register_tokens" in sd and _np(sd["register_tokens"]).shape[0] > 0:
        params["register_tokens"] = get("register_tokens")
    return params
