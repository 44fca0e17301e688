"""PyTorch state dicts: reading `torch.save` files, and `tiny-recursive-model` (PyPI) weights in and out.

The PyPI package's TinyRecursiveModel + MLPMixer1D converts on the state dict alone (tensors or NumPy
arrays), so torch is needed only to read or write the file:

    sd = torch.load("trm.pt", map_location="cpu", weights_only=True)
    cfg, seq_len = config_from_torch_state_dict(sd)    # dims inferred from the tensors
    params = from_torch_state_dict(sd)
    model = make_model(cfg, seq_len=seq_len)           # seq_len = mixer seq_len - num_register_tokens
    sd2 = to_torch_state_dict(model, params)           # back: TinyRecursiveModel(...).load_state_dict(sd2)
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Union

import jax
import numpy as np

from trm_jax.config import ModelConfig
from trm_jax.errors import TRMError
from trm_jax.models.mixer import MLPMixer1D


def to_numpy(t: Any) -> np.ndarray:
    """A tensor (bfloat16 included) or array as a float32 ndarray."""
    if hasattr(t, "detach"):
        return t.detach().cpu().float().numpy()
    return np.asarray(t, dtype=np.float32)


def load_torch_state_dict(path: Union[str, os.PathLike]) -> dict:
    """A `torch.save`d state dict as {key: float32 ndarray}; TRMError for anything else."""
    import torch  # optional dependency (the torch extra): only reading checkpoint files needs it

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TRMError(f"checkpoint {path} does not exist; pass the step_N file that pretrain.py wrote")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle (weights_only refuses it), not a torch file at all
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise TRMError(f"checkpoint {path} cannot be read as a torch state dict ({msg}); the file is truncated "
                       "or is not a torch.save of a model state_dict") from None
    if not isinstance(sd, Mapping) or not sd:
        raise TRMError(f"checkpoint {path} holds a {type(sd).__name__}, not a model state dict "
                       "({name: tensor}); save model.state_dict()")
    out = {}
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise TRMError(f"checkpoint {path}: entry {k!r} is a {type(v).__name__}, not a tensor; the file is "
                           "not a model state dict")
        out[k] = to_numpy(v)
    return out


def _strip_wrapper_prefix(sd: Mapping[str, Any]) -> dict:
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
    """The model config of a `tiny-recursive-model` (PyTorch) state dict, read from its tensors' shapes.

    Dimensions, depth, vocabulary, register tokens and expansion factors are read; `n` and `T` are not
    stored in a state dict, so pass the values the model was trained with as overrides.

    Args:
        state_dict: A `TinyRecursiveModel(MLPMixer1D)` state dict (`torch.load(...)`; wrapper prefixes
            such as DDP's `module.` are accepted).
        **overrides: `ModelConfig` fields to set, e.g. `num_refinement_blocks=3, num_latent_refinements=6`.

    Returns:
        `(model_config, seq_len)`: `make_model(model_config, seq_len=seq_len)` builds the model;
        `seq_len` excludes register tokens.

    Raises:
        TRMError: The state dict is not a `tiny-recursive-model` TinyRecursiveModel's.
    """
    sd = _strip_wrapper_prefix(state_dict)
    try:
        depth = _mixer_depth(sd)
        num_tokens, dim = to_numpy(sd["input_embed.weight"]).shape
        num_registers = to_numpy(sd["register_tokens"]).shape[0] if "register_tokens" in sd else 0
        token_hidden, mixer_len = to_numpy(sd["network.0.0.fn.0.weight"]).shape[:2]
        channel_hidden = to_numpy(sd["network.0.1.fn.0.weight"]).shape[0]
    except KeyError as e:
        raise TRMError(f"state dict is missing {e}; is this a tiny-recursive-model TinyRecursiveModel?") from None
    cfg = dict(network="mixer", dim=int(dim), depth=depth, num_tokens=int(num_tokens),
               num_register_tokens=int(num_registers), expansion_factor=token_hidden / dim,
               expansion_factor_token=channel_hidden / dim)
    cfg.update(overrides)
    return ModelConfig(**cfg), int(mixer_len - num_registers)


def from_torch_state_dict(state_dict: Mapping[str, Any]) -> dict:
    """The parameters of a `tiny-recursive-model` (PyTorch) state dict.

    They fit the model `config_from_torch_state_dict` describes, which then computes what the PyTorch model does.

    Args:
        state_dict: A `TinyRecursiveModel(MLPMixer1D)` state dict (tensors or arrays; wrapper prefixes
            such as DDP's `module.` are accepted).

    Returns:
        The parameter pytree, float32 arrays.

    Raises:
        TRMError: A tensor the model needs is missing.
    """
    sd = _strip_wrapper_prefix(state_dict)
    depth = _mixer_depth(sd)
    get = lambda k: to_numpy(sd[k])  # noqa: E731
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
    if "register_tokens" in sd and to_numpy(sd["register_tokens"]).shape[0] > 0:
        params["register_tokens"] = get("register_tokens")
    return params


def to_torch_state_dict(model, params) -> dict:
    """`tiny-recursive-model` (PyPI) state dict of a pypi-variant MLPMixer1D model (inverse of
    `from_torch_state_dict`): load it with `TinyRecursiveModel(...).load_state_dict(sd)`."""
    import torch  # optional dependency (the torch extra): the result is torch tensors

    if model.variant != "pypi" or not isinstance(model.network, MLPMixer1D):
        raise TRMError("to_torch_state_dict needs a pypi-variant model with an MLPMixer1D network (the only "
                       "network tiny-recursive-model checkpoints describe)")
    p = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    net = p["network"]
    sd = {"output_init_embed": p["output_init_embed"], "latent_init_embed": p["latent_init_embed"],
          "input_embed.weight": p["input_embed"]["embedding"]}
    if "register_tokens" in p:
        sd["register_tokens"] = p["register_tokens"]
    for i in range(model.network.depth):
        tok, ch = net[f"block{i}_token_mixing"], net[f"block{i}_channel_mixing"]
        # token mixing is Conv1d(kernel=1): [out, in, 1]
        sd[f"network.{i}.0.fn.0.weight"] = tok["in_kernel"].T[..., None]
        sd[f"network.{i}.0.fn.0.bias"] = tok["in_bias"]
        sd[f"network.{i}.0.fn.3.weight"] = tok["out_kernel"].T[..., None]
        sd[f"network.{i}.0.fn.3.bias"] = tok["out_bias"]
        sd[f"network.{i}.0.norm.weight"] = net[f"block{i}_token_norm"]
        sd[f"network.{i}.1.fn.0.weight"] = ch["in"]["kernel"].T
        sd[f"network.{i}.1.fn.0.bias"] = ch["in"]["bias"]
        sd[f"network.{i}.1.fn.3.weight"] = ch["out"]["kernel"].T
        sd[f"network.{i}.1.fn.3.bias"] = ch["out"]["bias"]
        sd[f"network.{i}.1.norm.weight"] = net[f"block{i}_channel_norm"]
    sd[f"network.{model.network.depth}.weight"] = net["final_norm"]
    sd["to_pred.weight"] = p["to_pred"]["kernel"].T
    sd["to_halt_pred.1.weight"] = p["to_halt_pred"]["kernel"].T
    return {k: torch.from_numpy(np.array(v, np.float32, order="C")) for k, v in sd.items()}
