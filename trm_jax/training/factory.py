"""Factories: the one place where a config becomes objects (model, tokenizer, trainer).

Scripts and notebooks call these; nothing else builds a model or trainer from a config.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Union

from trm_jax.config import TRMConfig, load_config
from trm_jax.errors import ConfigError


def as_config(config: Union[TRMConfig, dict, str, os.PathLike, None], overrides=()) -> TRMConfig:
    """A TRMConfig from a config object, a nested dict or a YAML path (None = defaults)."""
    if isinstance(config, TRMConfig):
        if overrides:
            from trm_jax.config import apply_overrides
            return TRMConfig.from_dict(apply_overrides(config.to_dict(), list(overrides)))
        return config
    if isinstance(config, dict):
        from trm_jax.config import apply_overrides
        return TRMConfig.from_dict(apply_overrides(dict(config), list(overrides)))
    if config is None or isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides)
    raise ConfigError(f"config must be a TRMConfig, a dict or a YAML path, got {type(config).__name__}")


def create_tokenizer(config: TRMConfig, *, save_dir: Optional[str] = None, corpus=None):
    """`(tokenizer, vocab_size, pad_token_id)` for `config.data.tokenizer`.

    A tokenizer already saved in `save_dir` (a resumed run) wins, so a trained BPE stays identical;
    a new one is saved there. `corpus` overrides the BPE training texts (default: the task's).
    """
    from trm_jax.data import load_tokenizer, load_tokenizer_for_config, save_tokenizer

    if corpus is not None and config.data.tokenizer == "bpe":
        from trm_jax.data.tokenizers import is_saved_tokenizer
        if is_saved_tokenizer(save_dir):
            return load_tokenizer(save_dir)
        tok, vocab, pad = load_tokenizer("bpe", corpus=corpus, vocab_size=config.data.bpe_vocab_size)
        if save_dir:
            save_tokenizer(tok, save_dir)
        return tok, vocab, pad
    return load_tokenizer_for_config(config, save_dir=save_dir)


def create_model(config: TRMConfig, num_tokens: Optional[int] = None, seq_len: Optional[int] = None, *,
                 dim: Optional[int] = None):
    """The TinyRecursiveModel for `config` (optionally at another width `dim`, e.g. a curriculum stage).

    `num_tokens` defaults to `model.num_tokens`, else the tokenizer's vocabulary; `seq_len` to
    `data.seq_len`.
    """
    from trm_jax.models.trm import make_model

    mcfg = config.model if dim is None else dataclasses.replace(config.model, dim=int(dim))
    if dim is not None:
        mcfg.validate("model")
    n = num_tokens or mcfg.num_tokens
    if not n:
        _, n, _ = create_tokenizer(config)
    return make_model(mcfg, int(n), int(seq_len or config.data.seq_len))


def create_trainer(config: Union[TRMConfig, dict, str, os.PathLike, None] = None, *, overrides=(),
                   run_dir: Optional[str] = None, resume: bool = False, **kwargs):
    """A ready `Trainer` for `config` (object, dict or YAML path).

    Starts multi-host JAX first when `distributed.enabled` (it must precede any JAX computation).
    Extra keyword arguments go to `Trainer` (tokenizer, datasets_fn, train_dataset, eval_dataset).
    """
    from trm_jax.training import distributed
    from trm_jax.training.trainer import Trainer

    cfg = as_config(config, overrides)
    distributed.initialize(cfg.distributed)
    return Trainer(cfg, run_dir=run_dir, resume=resume, **kwargs)
