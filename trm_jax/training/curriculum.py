"""Curriculum: stages over the global step, and carrying parameters across a stage change.

`CurriculumStage` (the config dataclass) gives a stage's length in steps or epochs plus optional
seq_len, batch_size, dim, difficulty and learning rate; unset fields inherit from the previous stage
(the first stage from the base config). Without stages the run is one stage built from the base
config. `CurriculumScheduler` resolves stages into concrete `ResolvedStage`s with start/end steps.

When a stage changes a parameter shape (wider `dim`; longer `seq_len` for the mixer, whose token
mixing weights are sized by the sequence), the trained arrays are copied into the leading block of a
freshly initialised model (`embed_params`): registers come first in the sequence and the old
features/positions keep their indices, so the old weights stay in place and the new rows/columns
start from the fresh initialisation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Optional

import jax
import numpy as np

from trm_jax.config import CurriculumStage, TRMConfig
from trm_jax.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["CurriculumStage", "CurriculumScheduler", "ResolvedStage", "embed_params", "shapes_equal"]


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

    @property
    def end(self) -> int:
        return self.start + self.steps

    def describe(self) -> str:
        return (f"stage {self.index}: steps [{self.start}, {self.end}), seq_len={self.seq_len}, "
                f"batch_size={self.batch_size}, dim={self.dim}, difficulty={self.difficulty:g}, "
                f"lr={self.learning_rate:g}")


class CurriculumScheduler:
    """Maps global steps to curriculum stages.

    `epoch_size`: training samples per epoch, used to turn `epochs` into steps
    (steps = ceil(epochs * epoch_size / batch_size)).
    """

    def __init__(self, config: TRMConfig, epoch_size: Optional[int] = None):
        self.config = config
        stages = config.curriculum.stages
        if not stages:
            stages = (CurriculumStage(steps=config.training.steps),)
            keys = ["training.steps"]
        else:
            keys = [f"curriculum.stages[{i}]" for i in range(len(stages))]
        prev = dict(seq_len=config.data.seq_len, batch_size=config.training.batch_size, dim=config.model.dim,
                    difficulty=config.data.difficulty, learning_rate=config.training.learning_rate)
        resolved, start = [], 0
        for i, (stage, key) in enumerate(zip(stages, keys)):
            cur = {k: (getattr(stage, k) if getattr(stage, k) is not None else v) for k, v in prev.items()}
            if cur["dim"] < prev["dim"]:
                raise ConfigError(f"config key '{key}.dim': stages may only grow the model width "
                                  f"({cur['dim']} < {prev['dim']} of the previous stage)")
            if config.model.network == "transformer" and cur["dim"] % config.model.num_heads:
                raise ConfigError(f"config key '{key}.dim': {cur['dim']} is not divisible by "
                                  f"model.num_heads ({config.model.num_heads})")
            if stage.steps is not None:
                steps = int(stage.steps)
            else:
                if not epoch_size:
                    raise ConfigError(f"config key '{key}.epochs': needs the training set size; give 'steps' "
                                      "instead or pass epoch_size")
                steps = max(1, math.ceil(stage.epochs * epoch_size / cur["batch_size"]))
            resolved.append(ResolvedStage(index=i, start=start, steps=steps, **cur))
            start += steps
            prev = cur
        self.stages: tuple[ResolvedStage, ...] = tuple(resolved)
        self.batch_keys = [f"{k}.batch_size" if config.curriculum.stages else "training.batch_size" for k in keys]

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end

    def __len__(self) -> int:
        return len(self.stages)

    def stage_at(self, step: int) -> ResolvedStage:
        """The stage that runs global step `step` (the last stage past the end)."""
        for stage in self.stages:
            if step < stage.end:
                return stage
        return self.stages[-1]

    def describe(self) -> str:
        return "\n".join(s.describe() for s in self.stages)


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
