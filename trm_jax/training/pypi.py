"""The PyPI package's way in: `Trainer(model, dataset, epochs=..., batch_size=...)` arguments as a run config.

The seed's names are accepted: `halt_prob_thres` (halt_threshold), `max_recurrent_steps`
(max_recursion_depth) and `ema_decay_rate` (ema_decay). Other keyword arguments are `training`
config keys, checked as YAML's are (`TRMConfig.from_dict`).
"""

from __future__ import annotations

import logging
from typing import Optional

from trm_jax.config import TRMConfig, to_plain
from trm_jax.data.datasets import ArrayDataset, as_array_dataset
from trm_jax.errors import ConfigError
from trm_jax.models import TinyRecursiveModel, model_config
from trm_jax.models.factory import MODEL_FIELDS

log = logging.getLogger(__name__)

# the PyPI package's argument names -> trm_jax's
ALIASES = dict(halt_prob_thres="halt_threshold", max_recurrent_steps="max_recursion_depth", ema_decay_rate="ema_decay")
DEFAULT_BATCH_SIZE = 16  # the PyPI package's defaults
DEFAULT_EPOCHS = 2


def trainer_inputs(model, dataset, config: Optional[TRMConfig], *, train_dataset, eval_dataset, run_dir, epochs, steps,
                   batch_size, halt_threshold, max_recursion_depth, seed, training: dict):
    """`(model or None, config, train set, eval set, run directory or None for a temporary one)` from
    the Trainer's arguments: a model and data (the PyPI way, `config_for_model`) or a config."""
    if isinstance(model, TRMConfig):  # Trainer(config, ...)
        model, config = None, model
    if model is not None:
        if config is not None:
            raise ConfigError("Trainer: pass either a model (with a dataset) or config=, not both")
        model, config, train, evl = config_for_model(
            model, train_dataset if dataset is None else dataset, eval_dataset, epochs=epochs, steps=steps,
            batch_size=batch_size, halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth,
            run_dir=run_dir, seed=seed, **training)
        return model, config, train, evl, run_dir
    if config is None:
        raise ConfigError("Trainer needs a model and a dataset (Trainer(model, (inputs, labels))) or a config "
                          "(Trainer(config=trm_jax.load_config('config.yaml')))")
    if dataset is not None or training or any(v is not None for v in (epochs, steps, batch_size)):
        raise ConfigError("Trainer(config=...): set training options in the config (or --set), not as "
                          "keyword arguments; datasets go in train_dataset/eval_dataset")
    return None, config, train_dataset, eval_dataset, run_dir or config.run_dir


def config_for_model(model: TinyRecursiveModel, dataset, eval_dataset=None, *, epochs: Optional[float] = None,
                     steps: Optional[int] = None, batch_size: Optional[int] = None,
                     halt_threshold: Optional[float] = None, max_recursion_depth: Optional[int] = None,
                     run_dir: Optional[str] = None, seed: int = 0, **training
                     ) -> tuple[TinyRecursiveModel, TRMConfig, ArrayDataset, Optional[ArrayDataset]]:
    """(model, config, train set, eval set) of a run of `model` on the given arrays. The model comes
    back with the halting settings given here and, for a network without its own, the data's seq_len."""
    for old, new in ALIASES.items():
        if old in training:
            value = training.pop(old)
            if new == "halt_threshold":
                halt_threshold = value if halt_threshold is None else halt_threshold
            elif new == "max_recursion_depth":
                max_recursion_depth = value if max_recursion_depth is None else max_recursion_depth
            else:
                training.setdefault(new, value)
    if dataset is None:
        raise ConfigError("Trainer(model, dataset): dataset is missing; pass (inputs, labels) arrays, a dict "
                          "with 'inputs' and 'labels', or an ArrayDataset")
    train = as_array_dataset(dataset, "dataset")
    evl = None if eval_dataset is None else as_array_dataset(eval_dataset, "eval_dataset")
    updates = {}
    if halt_threshold is not None:
        updates["halt_threshold"] = float(halt_threshold)
    if max_recursion_depth is not None:
        updates["max_recursion_depth"] = int(max_recursion_depth)
    if model.seq_len is None and getattr(model.network, "seq_len", None) is None:
        updates["seq_len"] = train.seq_len
    model = model.clone(**updates) if updates else model
    if train.seq_len != model.token_len:
        raise ConfigError(f"Trainer: the dataset's rows have {train.seq_len} tokens but the model takes "
                          f"{model.token_len} (network seq_len minus {model.prefix_len} prefix positions)")
    if evl is not None and evl.seq_len != train.seq_len:
        raise ConfigError(f"Trainer: eval_dataset rows have {evl.seq_len} tokens, the dataset's {train.seq_len}")
    mcfg = model_config(model)
    if mcfg is None:
        log.info("Trainer: %s is not described by a ModelConfig; the run directory stores its weights, "
                 "rebuild the model in code to use them", type(model.network).__name__)
        # the model's own fields; the network's keys keep their defaults
        model_section = {k: getattr(model, k) for k in ("dim", *MODEL_FIELDS)}
    else:
        model_section = to_plain(mcfg)
    if batch_size is not None:
        training["batch_size"] = int(batch_size)
    stages = []
    if steps is not None:
        training["steps"] = int(steps)
    else:
        stages = [{"epochs": float(DEFAULT_EPOCHS if epochs is None else epochs)}]
    training.setdefault("batch_size", DEFAULT_BATCH_SIZE)
    training.setdefault("eval_batch_size", max(1, min(256, len(evl) if evl is not None else 1)))
    # through the config's one coercion path: keyword values are checked as the YAML keys are
    config = TRMConfig.from_dict({
        "seed": int(seed), "run_dir": run_dir or "runs/trainer",
        "model": {**model_section, "num_tokens": model.num_tokens},
        "data": {"seq_len": train.seq_len, "num_eval": 0 if evl is None else len(evl)},
        "training": {k: to_plain(v) for k, v in training.items()}, "curriculum": {"stages": stages},
        "monitoring": {"enabled": False}})
    return model, config, train, evl
