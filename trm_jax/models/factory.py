"""make_model: the one route from a ModelConfig to a TinyRecursiveModel (and model_config, the way back)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp
from flax import linen as nn

from trm_jax.config import ModelConfig
from trm_jax.errors import ConfigError
from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.module import TinyRecursiveModel
from trm_jax.models.transformer import TransformerNetwork

# ModelConfig fields that are TinyRecursiveModel fields of the same name
MODEL_FIELDS = ("num_refinement_blocks", "num_latent_refinements", "halt_loss_weight", "num_register_tokens",
                "max_recursion_depth", "halt_threshold", "halting", "settle_steps", "loss", "variant",
                "num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len", "pos_encodings", "dtype", "scan_unroll",
                "remat")


def make_network(config: ModelConfig, total_len: int) -> nn.Module:
    """The network of `config.network` for sequences of `total_len` positions (prefix included)."""
    dtype = jnp.dtype(config.dtype)
    if config.network == "mixer":
        return MLPMixer1D(config.dim, config.depth, total_len, config.expansion_factor,
                          config.expansion_factor_token, config.dropout, config.gelu_approximate, dtype)
    return TransformerNetwork(config.dim, config.depth, config.num_heads, config.mlp_expansion, config.rope_theta,
                              config.dropout, dtype, mlp_t=config.mlp_t, seq_len=total_len,
                              use_rope=config.pos_encodings == "rope", rms_norm_eps=config.rms_norm_eps)


def make_model(config: ModelConfig, num_tokens: Optional[int] = None, seq_len: int = 64, *,
               dim: Optional[int] = None) -> TinyRecursiveModel:
    """The one place where a ModelConfig becomes a model.

    Args:
        config: The `model` section of a run config.
        num_tokens: Vocabulary size; None = `config.num_tokens`.
        seq_len: Tokens per sample, without the prefix (register tokens or puzzle embedding).
        dim: Width overriding `config.dim` (a curriculum stage's width); the changed config is validated.

    Returns:
        The `TinyRecursiveModel` with the network the config names.

    Raises:
        ConfigError: The vocabulary size is unknown (neither `num_tokens` nor `config.num_tokens`), or the
            config changed by `dim` is invalid.
    """
    if dim is not None and int(dim) != config.dim:
        config = dataclasses.replace(config, dim=int(dim))
        config.validate("model")
    num_tokens = num_tokens or config.num_tokens
    if not num_tokens:
        raise ConfigError("config key 'model.num_tokens': vocabulary size unknown; set it or pass num_tokens")
    kwargs = {k: getattr(config, k) for k in MODEL_FIELDS}
    if config.variant == "official":
        kwargs["num_register_tokens"] = 0
    probe = TinyRecursiveModel(config.dim, int(num_tokens), None, seq_len=int(seq_len), **kwargs)
    network = make_network(config, probe.total_len)
    return TinyRecursiveModel(config.dim, int(num_tokens), network, seq_len=int(seq_len), **kwargs)


def model_config(model: TinyRecursiveModel) -> Optional[ModelConfig]:
    """The ModelConfig that `make_model` would turn into this model, or None for a network that no
    config describes (a user-defined network): a run directory can then store weights but not rebuild
    the network."""
    net = model.network
    common = {k: getattr(model, k) for k in MODEL_FIELDS}
    common.update(dim=model.dim, num_tokens=model.num_tokens)
    if isinstance(net, MLPMixer1D):
        cfg = ModelConfig(network="mixer", depth=net.depth, expansion_factor=net.expansion_factor,
                          expansion_factor_token=net.expansion_factor_token, dropout=net.dropout,
                          gelu_approximate=net.approximate_gelu, **common)
    elif isinstance(net, TransformerNetwork):
        pos = model.pos_encodings if model.pos_encodings == "learned" else ("rope" if net.use_rope else "none")
        common["pos_encodings"] = pos
        cfg = ModelConfig(network="transformer", depth=net.depth, num_heads=net.num_heads,
                          mlp_expansion=net.mlp_expansion, rope_theta=net.rope_theta, dropout=net.dropout,
                          mlp_t=net.mlp_t, rms_norm_eps=net.rms_norm_eps, **common)
    else:
        return None
    return cfg if make_model(cfg, model.num_tokens, model.token_len).network == net else None
