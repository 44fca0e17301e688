"""Checkpoints of the official TRM code (SamsungSAILMontreal/TinyRecursiveModels) in and out.

The official `pretrain.py` saves `torch.save(model.state_dict(), ".../step_N")` of the
ACTLossHead(TinyRecursiveReasoningModel_ACTV1) module, so keys read `_orig_mod.model.inner.<name>`
after torch.compile (`model.inner.<name>` with DISABLE_COMPILE), and writes the whole run config to
`all_config.yaml` beside it (arch under "arch"; vocab_size, seq_len and num_puzzle_identifiers come
from the dataset's metadata, not the config, so they are read from the tensors or the dataset).

    model, params = from_official_checkpoint("checkpoints/run/step_5000")   # all_config.yaml beside it
    out = supervision_step(model, params, tokens, initial_carry(model, params, B), puzzle_ids=ids)

Also `to_official_state_dict`, back to the official names. (The PyPI `tiny-recursive-model` names
are torch_checkpoint.py's.)
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Union

import jax
import numpy as np
import yaml

from trm_jax.config import ModelConfig
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models.factory import make_model, model_config
from trm_jax.models.recursion import init_params
from trm_jax.models.torch_checkpoint import load_torch_state_dict, to_numpy

OFFICIAL_PREFIXES = ("_orig_mod.model.inner.", "model.inner.", "_orig_mod.", "inner.")
EXPORT_PREFIX = "_orig_mod.model.inner."  # what pretrain.py (torch.compile'd) loads with load_state_dict


# ------------------------------------------------------------------------------------------ reading

def strip_official_prefix(sd: Mapping[str, Any]) -> dict:
    """Keys without the `_orig_mod.model.inner.` / `model.inner.` wrappers."""
    out = {}
    for k, v in sd.items():
        for p in OFFICIAL_PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def read_official_arch(path: Union[str, os.PathLike]) -> dict:
    """The arch section of an official `all_config.yaml` (or a YAML file holding just the arch), with
    `loss_type` lifted from arch.loss and `data_paths` kept (to find the dataset's metadata)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise TRMError(f"cannot read the official config {path}: {e}; pass arch= or --arch all_config.yaml") from None
    except yaml.YAMLError as e:
        raise TRMError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise TRMError(f"{path} does not hold a mapping; expected the official all_config.yaml")
    arch = doc.get("arch", doc)
    if not isinstance(arch, dict) or "hidden_size" not in arch:
        raise TRMError(f"{path} has no arch.hidden_size; expected the all_config.yaml written by the official "
                       "pretrain.py (arch: {name, loss, hidden_size, L_layers, ...})")
    arch = dict(arch)
    loss = arch.pop("loss", None)
    if isinstance(loss, dict) and "loss_type" in loss:
        arch.setdefault("loss_type", loss["loss_type"])
    if "data_paths" in doc:
        arch.setdefault("data_paths", doc["data_paths"])
    arch["_source"] = path
    return arch


def _dataset_metadata(arch: dict) -> dict:
    """dataset.json (official PuzzleDatasetMetadata) of the first data path, if it is on this machine."""
    base = os.path.dirname(arch.get("_source", "")) or "."
    for data_path in arch.get("data_paths") or []:
        for split in ("train", "test"):
            for root in (data_path, os.path.join(base, data_path)):
                meta = os.path.join(root, split, "dataset.json")
                if os.path.isfile(meta):
                    try:
                        with open(meta, encoding="utf-8") as f:
                            return json.load(f)
                    except (OSError, ValueError):
                        continue
    return {}


# ------------------------------------------------------------------------------------ arch -> config

def _prefix_len(arch: dict) -> int:
    ndim = int(arch.get("puzzle_emb_ndim", 0))
    if ndim == 0:  # the official model runs only with no prefix when it has no puzzle embedding
        return 0
    plen = int(arch.get("puzzle_emb_len", 16))  # official TinyRecursiveReasoningModel_ACTV1Config default 16
    return plen or -(-ndim // int(arch["hidden_size"]))


def _loss_name(loss_type: str) -> str:
    if "stablemax" in loss_type:
        return "stablemax"
    if "softmax" in loss_type:
        return "softmax"
    raise ConfigError(f"official arch loss_type {loss_type!r}: trm_jax knows stablemax_cross_entropy and "
                      "softmax_cross_entropy")


_REQUIRED = ("hidden_size", "L_layers", "H_cycles", "L_cycles", "expansion", "num_heads", "vocab_size")


def official_arch_to_model_config(arch: Mapping[str, Any]) -> ModelConfig:
    """The ModelConfig of an official arch config (needs vocab_size; see MODEL_API field mapping)."""
    missing = [k for k in _REQUIRED if k not in arch]
    if missing:
        raise ConfigError(f"official arch config lacks {missing}; pass them in arch= (vocab_size comes from the "
                          "dataset's dataset.json, or the checkpoint's embed_tokens)")
    pos = str(arch.get("pos_encodings", "rope"))
    ndim = int(arch.get("puzzle_emb_ndim", 0))
    cfg = ModelConfig(
        variant="official", network="transformer",
        dim=int(arch["hidden_size"]), depth=int(arch["L_layers"]), num_heads=int(arch["num_heads"]),
        mlp_expansion=float(arch["expansion"]), rope_theta=float(arch.get("rope_theta", 10000.0)),
        rms_norm_eps=float(arch.get("rms_norm_eps", 1e-5)), mlp_t=bool(arch.get("mlp_t", False)),
        pos_encodings=pos if pos in ("rope", "learned") else "none",
        num_refinement_blocks=int(arch["H_cycles"]), num_latent_refinements=int(arch["L_cycles"]),
        max_recursion_depth=int(arch.get("halt_max_steps", 16)),
        halt_loss_weight=0.5,  # official ACTLossHead: lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
        loss=_loss_name(str(arch.get("loss_type", "stablemax_cross_entropy"))),
        num_tokens=int(arch["vocab_size"]),
        num_puzzle_identifiers=int(arch.get("num_puzzle_identifiers", 0)) if ndim else 0,
        puzzle_emb_ndim=ndim, puzzle_emb_len=_prefix_len(arch) if ndim else 0,
    )
    cfg.validate()
    return cfg


def _complete_arch(arch: dict, sd: Mapping[str, np.ndarray], where: str) -> dict:
    """Fill vocab_size / num_puzzle_identifiers / seq_len from the tensors (or the dataset metadata)."""
    arch = dict(arch)
    meta = _dataset_metadata(arch)
    for key in ("vocab_size", "num_puzzle_identifiers", "seq_len"):
        if key not in arch and key in meta:
            arch[key] = int(meta[key])
    if "vocab_size" not in arch and "embed_tokens.embedding_weight" in sd:
        arch["vocab_size"] = int(sd["embed_tokens.embedding_weight"].shape[0])
    if "num_puzzle_identifiers" not in arch and "puzzle_emb.weights" in sd:
        arch["num_puzzle_identifiers"] = int(sd["puzzle_emb.weights"].shape[0])
    if "seq_len" not in arch:
        prefix = _prefix_len(arch)
        if "embed_pos.embedding_weight" in sd:
            arch["seq_len"] = int(sd["embed_pos.embedding_weight"].shape[0]) - prefix
        elif arch.get("mlp_t") and "L_level.layers.0.mlp_t.down_proj.weight" in sd:
            arch["seq_len"] = int(sd["L_level.layers.0.mlp_t.down_proj.weight"].shape[0]) - prefix
        else:
            raise TRMError(f"{where}: the sequence length is stored neither in the tensors (RoPE attention) nor in "
                           "a dataset.json found via all_config.yaml data_paths; pass arch={..., 'seq_len': L} "
                           "(--seq-len L): the dataset's seq_len, e.g. 81 for Sudoku, 900 for Maze/ARC")
    return arch


# ------------------------------------------------------------------------------------------ mapping

def _official_to_ours(cfg: ModelConfig) -> dict:
    """{official key: (our param path, transpose)} for the model of `cfg`."""
    m = {"embed_tokens.embedding_weight": (("embed_tokens", "embedding"), False),
         "lm_head.weight": (("lm_head", "kernel"), True),
         "q_head.weight": (("q_head", "kernel"), True),
         "q_head.bias": (("q_head", "bias"), False),
         "H_init": (("H_init",), False), "L_init": (("L_init",), False)}
    if cfg.puzzle_emb_ndim:
        m["puzzle_emb.weights"] = (("puzzle_emb",), False)  # CastedSparseEmbedding's persistent buffer
    if cfg.pos_encodings == "learned":
        m["embed_pos.embedding_weight"] = (("embed_pos", "embedding"), False)
    for i in range(cfg.depth):
        p = f"L_level.layers.{i}."
        if cfg.mlp_t:
            m[p + "mlp_t.gate_up_proj.weight"] = (("network", f"block{i}_mlp_t", "gate_up", "kernel"), True)
            m[p + "mlp_t.down_proj.weight"] = (("network", f"block{i}_mlp_t", "down", "kernel"), True)
        else:
            m[p + "self_attn.qkv_proj.weight"] = (("network", f"block{i}_attention", "qkv", "kernel"), True)
            m[p + "self_attn.o_proj.weight"] = (("network", f"block{i}_attention", "out", "kernel"), True)
        m[p + "mlp.gate_up_proj.weight"] = (("network", f"block{i}_mlp", "gate_up", "kernel"), True)
        m[p + "mlp.down_proj.weight"] = (("network", f"block{i}_mlp", "down", "kernel"), True)
    return m


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree: dict, path, value):
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def from_official_checkpoint(path_or_state_dict, arch: Union[None, Mapping, str, os.PathLike] = None):
    """The model and parameters of an official TRM (TinyRecursiveModels repository) checkpoint.

    Args:
        path_or_state_dict: The checkpoint file (`torch.save`d) or its state dict.
        arch: The official arch config: a dict, or the path of the run's all_config.yaml; None = the
            all_config.yaml beside the checkpoint file.

    Returns:
        `(model, params)`: an official-variant `TinyRecursiveModel` and its float32 parameters.

    Raises:
        TRMError: No arch is found or it does not make a trm_jax model, or the checkpoint's keys or
            shapes do not match the arch (the message names the key).
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        where = os.fspath(path_or_state_dict)
        raw = load_torch_state_dict(where)
    elif isinstance(path_or_state_dict, Mapping):
        where = "state dict"
        raw = {k: to_numpy(v) for k, v in path_or_state_dict.items()}
    else:
        raise TRMError(f"from_official_checkpoint takes a file path or a state dict, got "
                       f"{type(path_or_state_dict).__name__}")
    if arch is None:
        if where == "state dict":
            raise TRMError("from_official_checkpoint(state_dict) needs arch= (the official arch config)")
        arch = os.path.join(os.path.dirname(os.path.abspath(where)), "all_config.yaml")
        if not os.path.isfile(arch):
            raise TRMError(f"{where}: no all_config.yaml beside the checkpoint; pass arch= (dict or the path of the "
                           "run's all_config.yaml)")
    arch = read_official_arch(arch) if isinstance(arch, (str, os.PathLike)) else dict(arch)
    sd = strip_official_prefix(raw)
    arch = _complete_arch(arch, sd, where)
    try:
        cfg = official_arch_to_model_config(arch)
        model = make_model(cfg, cfg.num_tokens, int(arch["seq_len"]))
    except ConfigError as e:
        raise TRMError(f"{where}: the official arch does not make a trm_jax model: {e}") from None
    shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    mapping = _official_to_ours(cfg)
    unexpected = sorted(k for k in sd if k not in mapping)
    if unexpected:
        raise TRMError(f"{where}: key {unexpected[0]!r} is not part of the model the arch describes "
                       f"(L_layers={cfg.depth}, mlp_t={cfg.mlp_t}, pos_encodings={arch.get('pos_encodings', 'rope')},"
                       f" puzzle_emb_ndim={cfg.puzzle_emb_ndim}); pass the arch the checkpoint was trained with")
    params: dict = {}
    for key, (path, transpose) in mapping.items():
        if key not in sd:
            raise TRMError(f"{where}: missing key {key!r} (official name {EXPORT_PREFIX}{key}); the file is not a "
                           "complete official TRM checkpoint, or was trained with another arch")
        value = sd[key].T if transpose else sd[key]
        want = tuple(_get(shapes, path).shape)
        if tuple(value.shape) != want:
            official_shape = want[::-1] if transpose else want
            raise TRMError(f"{where}: key {key!r} has shape {tuple(sd[key].shape)} but the arch expects "
                           f"{official_shape}; wrong arch for this file (check hidden_size, expansion, L_layers, "
                           "seq_len, puzzle_emb_len, vocab_size)")
        _set(params, path, np.ascontiguousarray(value, dtype=np.float32))
    return model, jax.tree.map(jax.numpy.asarray, params)


def to_official_state_dict(model, params, prefix: str = EXPORT_PREFIX) -> dict:
    """Official-format state dict (torch float32 tensors) of an official-variant transformer model."""
    import torch  # optional dependency (the torch extra): the result is torch tensors

    cfg = model_config(model)
    if cfg is None or cfg.variant != "official" or cfg.network != "transformer":
        raise TRMError("to_official_state_dict needs an official-variant model with the transformer network "
                       "(ModelConfig(variant='official', network='transformer'))")
    out = {}
    for key, (path, transpose) in _official_to_ours(cfg).items():
        value = np.asarray(_get(params, path), np.float32)
        out[prefix + key] = torch.from_numpy(np.array(value.T if transpose else value, np.float32, order="C"))
    return out


__all__ = ["from_official_checkpoint", "load_torch_state_dict", "official_arch_to_model_config",
           "read_official_arch", "strip_official_prefix", "to_official_state_dict"]
