"""Curriculum stages: resolved from the config, and at run time each one's model, data and compiled step.

`CurriculumStage` (the config dataclass) gives a stage's length in steps or epochs plus optional
seq_len, batch_size, dim, difficulty, learning rate and recursion depth (`num_refinement_blocks` T,
`num_latent_refinements` n); unset fields inherit from the previous stage (the first stage from the
base config). Without stages the run is one stage built from the base config. `stage_settings` is that
inheritance, the one place it is done (training; `stage_config` for `trm_jax.load`);
`CurriculumScheduler` adds start/end steps (`ResolvedStage`). T and n change no parameter shape: a stage
that changes only them keeps the weights and optimizer state as they are and compiles its own step.

At run time (`StageBuilder`) a stage's model comes from the one config -> model route
(`trm_jax.models.make_model`, at the stage's width and sequence length), its data from the run's task
(`task.datasets`), cached for one (seq_len, difficulty) at a time, and its compiled train step is built
once per (model, step settings) and kept by the builder. A stage change keeps the train state; when a
stage changes a parameter shape (wider `dim`; longer `seq_len` for the mixer, whose token mixing
weights are sized by the sequence), the trained arrays are copied into the leading block of a freshly
initialised model (`embed_params`): registers come first in the sequence and the old
features/positions keep their indices, so the old weights stay in place and the new rows/columns start
from the fresh initialisation; the optimizer state is rebuilt.

`create_model` and `create_tokenizer` are a run config's model and tokenizer outside a run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Optional, Union

import jax
import numpy as np

from trm_jax.config import CurriculumStage, ModelConfig, TRMConfig
from trm_jax.data.iterators import BatchIterator
from trm_jax.errors import ConfigError
from trm_jax.models import TinyRecursiveModel, init_params, make_model
from trm_jax.tasks import get_task
from trm_jax.training import distributed as dist
from trm_jax.training.state import TrainState, make_optimizer, make_train_state, split_table
from trm_jax.training.step import (StepSpec, TrainCarry, empty_train_carry, make_eval_step, make_train_step,
                                  pmap_eval_step, pmap_train_step)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ResolvedStage:
    index: int
    start: int  # first global step of the stage
    steps: int
    seq_len: int
    batch_size: int
    dim: int
    difficulty: float
    learning_rate: float
    num_refinement_blocks: int  # T
    num_latent_refinements: int  # n

    @property
    def end(self) -> int:
        return self.start + self.steps

    def describe(self) -> str:
        """The stage in one line: its steps and settings."""
        return (f"stage {self.index}: steps [{self.start}, {self.end}), seq_len={self.seq_len}, "
                f"batch_size={self.batch_size}, dim={self.dim}, T={self.num_refinement_blocks}, "
                f"n={self.num_latent_refinements}, difficulty={self.difficulty:g}, lr={self.learning_rate:g}")


def stage_settings(config: TRMConfig) -> list[tuple[str, CurriculumStage, dict]]:
    """`(config key, stage as configured, its settings)` of every curriculum stage, in order (one stage of
    `training.steps` without a curriculum). The settings are what a stage may change (seq_len, batch_size,
    dim, difficulty, learning_rate, num_refinement_blocks, num_latent_refinements), unset ones inherited;
    widths may only grow."""
    stages = config.curriculum.stages
    if not stages:
        stages, keys = (CurriculumStage(steps=config.training.steps),), ["training.steps"]
    else:
        keys = [f"curriculum.stages[{i}]" for i in range(len(stages))]
    prev = dict(seq_len=config.data.seq_len, batch_size=config.training.batch_size, dim=config.model.dim,
                difficulty=config.data.difficulty, learning_rate=config.training.learning_rate,
                num_refinement_blocks=config.model.num_refinement_blocks,
                num_latent_refinements=config.model.num_latent_refinements)
    out = []
    for stage, key in zip(stages, keys):
        cur = {k: (getattr(stage, k) if getattr(stage, k) is not None else v) for k, v in prev.items()}
        if cur["dim"] < prev["dim"]:
            raise ConfigError(f"config key '{key}.dim': stages may only grow the model width "
                              f"({cur['dim']} < {prev['dim']} of the previous stage)")
        if config.model.network == "transformer" and cur["dim"] % config.model.num_heads:
            raise ConfigError(f"config key '{key}.dim': {cur['dim']} is not divisible by "
                              f"model.num_heads ({config.model.num_heads})")
        out.append((key, stage, cur))
        prev = cur
    return out


def _settings_of(config: TRMConfig, stage: Optional[int]) -> dict:
    settings = stage_settings(config)
    return settings[-1 if stage is None else min(int(stage), len(settings) - 1)][2]


def model_shape(config: TRMConfig, stage: Optional[int] = None) -> tuple[int, int]:
    """(seq_len, dim) of the model in curriculum stage `stage` (default: the last, where training ends)."""
    cur = _settings_of(config, stage)
    return cur["seq_len"], cur["dim"]


def stage_model_config(model: ModelConfig, settings) -> ModelConfig:
    """`model` with the width and recursion depth (dim, T, n) of a stage's settings (a `stage_settings` dict
    or a ResolvedStage)."""
    get = settings.get if isinstance(settings, dict) else lambda k: getattr(settings, k)
    changes = {k: int(get(k)) for k in ("dim", "num_refinement_blocks", "num_latent_refinements")
               if int(get(k)) != getattr(model, k)}
    return dataclasses.replace(model, **changes) if changes else model


def stage_config(config: TRMConfig, stage: Optional[int] = None) -> TRMConfig:
    """The run config as curriculum stage `stage` (default: the last, where training ends) trains: its
    `data.seq_len` and its model's width and recursion depth (`dim`, `num_refinement_blocks`,
    `num_latent_refinements`). What `trm_jax.load` builds the model of a run directory from."""
    cur = _settings_of(config, stage)
    return config.replace(model=stage_model_config(config.model, cur),
                          data=dataclasses.replace(config.data, seq_len=int(cur["seq_len"])))


class CurriculumScheduler:
    """Maps global steps to curriculum stages.

    `stages` are the resolved stages (start step, steps and settings each); without `curriculum.stages`
    there is one, of `training.steps`.

    Args:
        config: The run's `TRMConfig`.
        epoch_size: Training samples per epoch, used to turn a stage's `epochs` into steps
            (steps = ceil(epochs * epoch_size / batch_size)).

    Raises:
        ConfigError: A stage is given in epochs but `epoch_size` is not, or a stage narrows the model
            (widths may only grow) or gives a width the transformer's heads do not divide.
    """

    def __init__(self, config: TRMConfig, epoch_size: Optional[int] = None):
        self.config = config
        resolved, start, self.batch_keys = [], 0, []
        for i, (key, stage, cur) in enumerate(stage_settings(config)):
            if stage.steps is not None:
                steps = int(stage.steps)
            else:
                if not epoch_size:
                    raise ConfigError(f"config key '{key}.epochs': needs the training set size; give 'steps' "
                                      "instead or pass epoch_size")
                steps = max(1, math.ceil(stage.epochs * epoch_size / cur["batch_size"]))
            resolved.append(ResolvedStage(index=i, start=start, steps=steps, **cur))
            self.batch_keys.append(f"{key}.batch_size" if config.curriculum.stages else "training.batch_size")
            start += steps
        self.stages: tuple[ResolvedStage, ...] = tuple(resolved)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run (the end of the last stage)."""
        return self.stages[-1].end

    def __len__(self) -> int:
        return len(self.stages)

    def stage_at(self, step: int) -> ResolvedStage:
        """The stage that runs a global step.

        Args:
            step: Optimizer steps done before it (0 = the first step).

        Returns:
            Its `ResolvedStage` (the last stage past the end).
        """
        for stage in self.stages:
            if step < stage.end:
                return stage
        return self.stages[-1]

    def describe(self) -> str:
        """One line per stage: its steps and settings."""
        return "\n".join(s.describe() for s in self.stages)


@dataclasses.dataclass
class Stage:
    """Runtime objects of the current curriculum stage."""

    spec: ResolvedStage
    model: TinyRecursiveModel
    train_set: Any
    eval_set: Any
    iterator: BatchIterator
    p_step: Callable  # the pmapped train step (StageBuilder keeps one per model and step settings)
    p_eval: Callable  # the pmapped eval step of the model (several local devices; compiled on first use)


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
        self._compiled: dict = {}  # (model, StepSpec) -> pmapped (train step, eval step): alike stages share them
        self.base_key = base_key
        self.process_index, self.process_count = process_index, process_count
        first = stage_settings(config)[0][2]
        self.epoch_size = num_samples(self.datasets(first["seq_len"], first["difficulty"])[0])
        self.scheduler = CurriculumScheduler(config, self.epoch_size)
        for spec, key in zip(self.scheduler.stages, self.scheduler.batch_keys):
            dist.check_batch(spec.batch_size, key)
        self.tx = make_optimizer(config.training)
        warn_untrained_halting(config)

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
        """The stage's model: its width, sequence length and recursion depth (T, n)."""
        depth = dict(num_refinement_blocks=spec.num_refinement_blocks,
                     num_latent_refinements=spec.num_latent_refinements)
        if self._fixed_model is not None:
            model = self._fixed_model
            if (spec.seq_len, spec.dim) != (model.token_len, model.dim):
                raise ConfigError(f"curriculum stage {spec.index} asks for seq_len {spec.seq_len}, dim {spec.dim}, "
                                  f"but the given model has {model.token_len}, {model.dim}")
            changed = {k: v for k, v in depth.items() if getattr(model, k) != v}
            return model.clone(**changed) if changed else model
        cfg = stage_model_config(self.config.model, spec)
        cfg.validate("model")
        return make_model(cfg, self.config.model.num_tokens, spec.seq_len)

    def build(self, spec: ResolvedStage) -> Stage:
        model = self.model(spec)
        train, evl = self.datasets(spec.seq_len, spec.difficulty)
        check_puzzle_ids(model, train, evl)
        iterator = BatchIterator(train, spec.batch_size, seed=self.config.seed + 1000003 * spec.index,
                                 shard_index=self.process_index, num_shards=self.process_count)
        step_spec = StepSpec.create(self.config.training, total_steps=self.scheduler.total_steps,
                                    global_batch=spec.batch_size, peak_lr=spec.learning_rate)
        if (model, step_spec) not in self._compiled:
            self._compiled[model, step_spec] = (pmap_train_step(make_train_step(model, step_spec)),
                                                pmap_eval_step(make_eval_step(model)))
        return Stage(spec, model, train, evl, iterator, *self._compiled[model, step_spec])

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


def warn_untrained_halting(config: TRMConfig) -> None:
    """Final-step supervision trains no halting head: say so when the model still stops by it."""
    m = config.model
    threshold = config.training.eval_halt_threshold or m.halt_threshold
    if config.training.supervision == "final" and m.halting == "head" and threshold <= 1:
        log.warning("training.supervision: final trains no halting head, but the model stops by it (model.halting "
                    "'head', threshold %g): held-out evaluation and inference stop where the untrained head says "
                    "(the PyPI variant's zero head: after the first supervision step). Set model.halting: settled, "
                    "or model.halt_threshold above 1 (every sample runs model.max_recursion_depth steps)", threshold)


def shapes_equal(a, b) -> bool:
    sa = jax.tree.map(lambda x: tuple(np.shape(x)), a)
    sb = jax.tree.map(lambda x: tuple(np.shape(x)), b)
    return jax.tree.structure(a) == jax.tree.structure(b) and sa == sb


def embed_params(old, fresh):
    """Copy each trained array of `old` into the leading block of the matching array of `fresh`.

    Axes may grow (or shrink: then the leading part of the old array is kept). Both trees must have the
    same structure (the same model family at a different width / sequence length).
    """
    if jax.tree.structure(old) != jax.tree.structure(fresh):
        raise ConfigError("curriculum: a stage changed the model's structure (not only its width or sequence "
                          "length); only dim, seq_len, batch_size, difficulty and learning_rate may change")

    def put(o, f):
        o, out = np.asarray(o), np.array(f, copy=True)
        if o.ndim != out.ndim:
            raise ConfigError(f"curriculum: cannot carry a parameter of shape {o.shape} into {out.shape}")
        block = tuple(slice(0, min(a, b)) for a, b in zip(o.shape, out.shape))
        out[block] = o[block]
        return out

    return jax.tree.map(put, old, fresh)


# ------------------------------------------------------------------------------- outside a run

def create_model(config: Union[TRMConfig, ModelConfig], num_tokens: Optional[int] = None,
                 seq_len: Optional[int] = None, *, dim: Optional[int] = None) -> TinyRecursiveModel:
    """The TinyRecursiveModel of a run config (`trm_jax.models.make_model` of `config.model`).

    Args:
        config: A run config (`TRMConfig`), or a `ModelConfig` (then `make_model`, the models layer's
            route, with the same arguments).
        num_tokens: Vocabulary size; None = `model.num_tokens`, else the task tokenizer's vocabulary (a
            ModelConfig must set it unless given here).
        seq_len: Tokens per sample; None = `data.seq_len` (required with a ModelConfig).
        dim: Another width than `model.dim` (a curriculum stage's).

    Returns:
        The `TinyRecursiveModel`.

    Raises:
        ConfigError: `config` is neither a TRMConfig nor a ModelConfig, a ModelConfig without `seq_len`,
            or the vocabulary size is unknown.
    """
    if isinstance(config, ModelConfig):
        if seq_len is None:
            raise ConfigError("create_model(ModelConfig): pass seq_len= (tokens per sample), or a run config "
                              "(TRMConfig), whose data.seq_len gives it")
        return make_model(config, num_tokens, seq_len, dim=dim)
    if not isinstance(config, TRMConfig):
        raise ConfigError(f"create_model takes a TRMConfig or a ModelConfig, got {type(config).__name__}")
    return make_model(config.model, num_tokens or config.model.num_tokens or create_tokenizer(config)[1],
                      seq_len or config.data.seq_len, dim=dim)


def create_tokenizer(config: TRMConfig, save_dir: Optional[str] = None):
    """The tokenizer of a run config's task.

    Args:
        config: The run's `TRMConfig` (`data.task`, `data.tokenizer`).
        save_dir: A tokenizer saved there is reused; a new one is saved there. None = not saved.

    Returns:
        `(tokenizer, vocab_size, pad_token_id)`.

    Raises:
        ConfigError: No such task, or a bad key of the task.
        TRMError: The tokenizer cannot be made (e.g. "bpe" with no corpus).
    """
    return get_task(config).tokenizer(save_dir)
