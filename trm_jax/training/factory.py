"""Factories: the config path's entry points (config -> model, tokenizer, trainer).

`make_*` build objects in memory; `create_*` are the same functions under the names README and older
code use. Dependency direction: factory -> trainer, never back.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from trm_jax.config import TRMConfig, apply_overrides, load_config
from trm_jax.errors import ConfigError
from trm_jax.models import make_model
from trm_jax.tasks import get_task
from trm_jax.training import distributed
from trm_jax.training.trainer import Trainer

__all__ = ["as_config", "create_model", "create_tokenizer", "create_trainer", "make_model_from_config",
           "make_tokenizer", "make_trainer"]


def as_config(config: Union[TRMConfig, dict, str, os.PathLike, None], overrides=()) -> TRMConfig:
    """A TRMConfig from a config object, a nested dict or a YAML path (None = defaults), checked by its
    task (its own keys parsed, another task's dropped: `get_task(config).config`), so a bad key fails
    here, before a run starts."""
    if isinstance(config, TRMConfig):
        config = TRMConfig.from_dict(apply_overrides(config.to_dict(), list(overrides))) if overrides else config
    elif isinstance(config, dict):
        config = TRMConfig.from_dict(apply_overrides(dict(config), list(overrides)))
    elif config is None or isinstance(config, (str, os.PathLike)):
        config = load_config(config, overrides)
    else:
        raise ConfigError(f"config must be a TRMConfig, a dict or a YAML path, got {type(config).__name__}")
    return get_task(config).config


def make_model_from_config(config: TRMConfig, num_tokens: Optional[int] = None, seq_len: Optional[int] = None, *,
                           dim: Optional[int] = None):
    """The TinyRecursiveModel of a run config (`trm_jax.models.make_model` of `config.model`), optionally at
    another width `dim`. `num_tokens` defaults to `model.num_tokens`, else the task tokenizer's vocabulary;
    `seq_len` to `data.seq_len`."""
    return make_model(config.model, num_tokens or config.model.num_tokens or get_task(config).tokenizer()[1],
                      seq_len or config.data.seq_len, dim=dim)


def make_trainer(config: Union[TRMConfig, dict, str, os.PathLike, None] = None, *, overrides=(),
                 run_dir: Optional[str] = None, resume: bool = False, **kwargs) -> Trainer:
    """A ready `Trainer` for `config` (object, dict or YAML path).

    Starts multi-host JAX first when `distributed.enabled` (it must precede any JAX computation).
    Extra keyword arguments go to `Trainer` (tokenizer, datasets_fn, train_dataset, eval_dataset,
    callbacks, overwrite, async_checkpoints).
    """
    cfg = as_config(config, overrides)
    distributed.initialize(cfg.distributed)
    return Trainer(config=cfg, run_dir=run_dir, resume=resume, **kwargs)


def make_tokenizer(config, save_dir=None):
    """`(tokenizer, vocab_size, pad_token_id)` of the run config's task."""
    return get_task(config).tokenizer(save_dir)


# the names README, docs and older code use
create_model = make_model_from_config
create_tokenizer = make_tokenizer
create_trainer = make_trainer
