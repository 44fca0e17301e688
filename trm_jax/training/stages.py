"""Curriculum stages at run time: each stage's model, data, iterator and compiled step, and stage changes.

The model comes from the one config -> model route (`trm_jax.models.make_model`, at the stage's
width and sequence length), the data from the run's task (`task.datasets`), cached for one
(seq_len, difficulty) at a time. A stage change keeps the train state; where a parameter shape
changes, the trained arrays are embedded into a freshly initialised model (curriculum.embed_params)
and the optimizer state is rebuilt.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional

import jax
import numpy as np

from trm_jax.config import TRMConfig
from trm_jax.data.iterators import BatchIterator
from trm_jax.errors import ConfigError
from trm_jax.models import TinyRecursiveModel, init_params, make_model
from trm_jax.training import distributed as dist
from trm_jax.training.curriculum import CurriculumScheduler, ResolvedStage, embed_params, shapes_equal
from trm_jax.training.state import TrainState, make_optimizer, make_train_state, split_table
from trm_jax.training.step import StepSpec, TrainCarry, compiled_train_step, empty_train_carry

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Stage:
    """Runtime objects of the current curriculum stage."""

    spec: ResolvedStage
    model: TinyRecursiveModel
    train_set: Any
    eval_set: Any
    iterator: BatchIterator
    p_step: Callable


def num_samples(dataset) -> int:
    try:
        return len(dataset)
    except TypeError:
        return len(dataset.inputs)


def resolve_vocabulary(config: TRMConfig, task, tokenizer, *, fixed_model: Optional[TinyRecursiveModel],
                       save_dir: Optional[str]) -> tuple[Any, TRMConfig]:
    """(tokenizer, config with `model.num_tokens` filled in). Without a tokenizer the task makes one
    (saved to / reused from `save_dir`); a given model brings its own vocabulary size."""
    if tokenizer is None and fixed_model is not None:
        vocab = fixed_model.num_tokens
    elif tokenizer is None:
        tokenizer, vocab, _ = task.tokenizer(save_dir=save_dir)
    else:
        vocab = getattr(tokenizer, "vocab_size", None)
    num_tokens = config.model.num_tokens or vocab
    if not num_tokens:
        raise ConfigError("config key 'model.num_tokens': unknown vocabulary size; set it or pass a tokenizer")
    if config.model.num_tokens and vocab and config.model.num_tokens < vocab:
        raise ConfigError(f"config key 'model.num_tokens': {config.model.num_tokens} is smaller than the "
                          f"tokenizer's vocabulary ({vocab}); set it to null to use the tokenizer's size")
    return tokenizer, config.replace(model=dataclasses.replace(config.model, num_tokens=int(num_tokens)))


def check_puzzle_ids(model: TinyRecursiveModel, *datasets) -> None:
    """Every puzzle identifier of the data must have a row in the model's puzzle-embedding table."""
    if not model.has_puzzle_emb:
        return
    for ds in datasets:
        ids = getattr(ds, "puzzle_ids", None)
        if ids is not None and len(ids) and int(np.max(ids)) >= model.num_puzzle_identifiers:
            raise ConfigError(f"config key 'model.num_puzzle_identifiers': the data has puzzle identifiers up to "
                              f"{int(np.max(ids))} but the table has {model.num_puzzle_identifiers} rows; set it to at "
                              f"least {int(np.max(ids)) + 1}")


class StageBuilder:
    """Builds the stages of one run. Data: `fixed_datasets=(train, eval)`, else `datasets_fn(seq_len,
    difficulty) -> (train, eval)`, else the task's; a given `fixed_model` is used as it is (its shapes
    must match every stage). The first stage's training set defines an epoch."""

    def __init__(self, config: TRMConfig, task, tokenizer, *, samples_transform=None,
                 fixed_model: Optional[TinyRecursiveModel] = None, fixed_datasets=None,
                 datasets_fn: Optional[Callable] = None, base_key: np.ndarray, process_index: int = 0,
                 process_count: int = 1):
        self.config, self.task, self.tokenizer = config, task, tokenizer
        self._transform, self._fixed_model, self._fixed = samples_transform, fixed_model, fixed_datasets
        self._datasets_fn = datasets_fn
        self._cache: dict = {}
        self.base_key = base_key
        self.process_index, self.process_count = process_index, process_count
        first = config.curriculum.stages[0] if config.curriculum.stages else None
        seq0 = (first.seq_len if first and first.seq_len else None) or config.data.seq_len
        diff0 = first.difficulty if first and first.difficulty is not None else config.data.difficulty
        self.epoch_size = num_samples(self.datasets(seq0, diff0)[0])
        self.scheduler = CurriculumScheduler(config, self.epoch_size)
        for spec, key in zip(self.scheduler.stages, self.scheduler.batch_keys):
            dist.check_batch(spec.batch_size, key)
        self.tx = make_optimizer(config.training)

    def datasets(self, seq_len: int, difficulty: float):
        if self._fixed is not None:
            train, evl = self._fixed
            if train.inputs.shape[1] != seq_len:
                raise ConfigError(f"the given train_dataset has seq_len {train.inputs.shape[1]} but the run needs "
                                  f"{seq_len} (data.seq_len / curriculum); pass datasets_fn to build per stage")
            return train, evl
        key = (int(seq_len), round(float(difficulty), 6))
        if key not in self._cache:
            if self._datasets_fn is not None:
                out = self._datasets_fn(seq_len, difficulty)
            else:
                out = self.task.datasets(self.tokenizer, seq_len=seq_len, difficulty=difficulty,
                                         samples_transform=self._transform)
            self._cache = {key: out}  # one stage's data at a time keeps memory flat
        return self._cache[key]

    def model(self, spec: ResolvedStage) -> TinyRecursiveModel:
        if self._fixed_model is not None:
            model = self._fixed_model
            if (spec.seq_len, spec.dim) != (model.token_len, model.dim):
                raise ConfigError(f"curriculum stage {spec.index} asks for seq_len {spec.seq_len}, dim {spec.dim}, "
                                  f"but the given model has {model.token_len}, {model.dim}")
            return model
        return make_model(self.config.model, self.config.model.num_tokens, spec.seq_len, dim=spec.dim)

    def build(self, spec: ResolvedStage) -> Stage:
        model = self.model(spec)
        train, evl = self.datasets(spec.seq_len, spec.difficulty)
        check_puzzle_ids(model, train, evl)
        iterator = BatchIterator(train, spec.batch_size, seed=self.config.seed + 1000003 * spec.index,
                                 shard_index=self.process_index, num_shards=self.process_count)
        step_spec = StepSpec.create(self.config.training, total_steps=self.scheduler.total_steps,
                                    global_batch=spec.batch_size, peak_lr=spec.learning_rate)
        return Stage(spec, model, train, evl, iterator, compiled_train_step(model, step_spec))

    def init_params(self, model: TinyRecursiveModel, spec: ResolvedStage):
        key = jax.random.fold_in(jax.random.wrap_key_data(self.base_key), spec.index)
        return jax.device_get(init_params(model, key))

    def state_shapes(self, model: TinyRecursiveModel) -> TrainState:
        """The TrainState's shapes and dtypes for `model` (no computation)."""
        return jax.eval_shape(lambda: make_train_state(init_params(model, jax.random.PRNGKey(0)), self.tx))

    def first_state(self, stage: Stage) -> TrainState:
        """The replicated TrainState at step 0: fresh parameters, EMA = parameters."""
        params = self.init_params(stage.model, stage.spec)
        return dist.replicate(jax.device_get(make_train_state(params, self.tx)))

    def empty_carry(self, stage: Stage) -> TrainCarry:
        """Every slot halted (the first step fills them), sharded over the local devices."""
        carry = empty_train_carry(stage.spec.batch_size // self.process_count, stage.model)
        return dist.put_sharded(dist.shard(carry))

    def carry_over(self, state: TrainState, prev: Stage, stage: Stage) -> tuple[TrainState, str]:
        """The replicated train state for `stage` from the one `prev` ended with, and what was done."""
        host = dist.unreplicate(state)
        target = jax.eval_shape(lambda: init_params(stage.model, jax.random.PRNGKey(0)))
        if shapes_equal(host.params, target):
            return dist.replicate(host), "params carried over"
        fresh = self.init_params(stage.model, stage.spec)
        params = embed_params(host.params, fresh)
        ema = embed_params(host.ema_params, split_table(fresh)[0])
        host = jax.device_get(make_train_state(params, self.tx, step=int(host.step), ema_params=ema))
        note = (f"trained weights embedded into a freshly initialised model (dim {prev.spec.dim}->{stage.spec.dim}, "
                f"seq_len {prev.spec.seq_len}->{stage.spec.seq_len}); optimizer state rebuilt")
        return dist.replicate(host), note
