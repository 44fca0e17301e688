"""Checkpoint glue: a run's whole state (train state, carry, key, stage, data position, callbacks) saved and restored.

The tree saved (checkpoint.Checkpointer writes it) is {"state": TrainState fields, "carry": the
carry as globally sharded arrays, "key": the base RNG key}; the JSON meta holds the step, the stage,
the data iterator's state (after the last batch a step consumed), the callbacks' state and run facts.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, NamedTuple

import jax
import numpy as np

from trm_jax.errors import TRMError
from trm_jax.training import distributed as dist
from trm_jax.training.checkpoint import Checkpointer
from trm_jax.training.curriculum import CurriculumScheduler
from trm_jax.training.metrics import to_jsonable
from trm_jax.training.stages import Stage
from trm_jax.training.state import TrainState
from trm_jax.training.step import TrainCarry, empty_train_carry

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def should_restore(checkpointer: Checkpointer, *, resume: bool, overwrite: bool, run_dir: str) -> bool:
    """Whether `train()` restores the run (resume with a checkpoint there) or starts it anew; a new run
    over another run's checkpoints needs `overwrite` (they are then deleted)."""
    if checkpointer.latest_step() is None:
        if resume:
            log.warning("--resume: no checkpoint in %s; starting a new run", checkpointer.directory)
        return False
    if resume:
        return True
    if not overwrite:
        raise TRMError(f"{run_dir} already holds checkpoints of a run; pass --resume (resume=True) to continue it, "
                       "overwrite=True to start it over, or choose another run_dir")
    log.warning("overwrite: deleting the checkpoints of the previous run in %s", run_dir)
    checkpointer.delete_all()
    return False


def save_run_state(checkpointer: Checkpointer, *, state: TrainState, carry: TrainCarry, base_key: np.ndarray,
                   stage: Stage, scheduler: CurriculumScheduler, iterator_state: dict, meta: dict) -> bool:
    """Save at the state's step (a no-op when that step is saved already). `state` is replicated and
    `carry` sharded, as the pmapped step has them; `meta` adds run facts (epoch, callbacks, ...)."""
    host = dist.unreplicate(state)
    step = int(host.step)
    tree = dict(state=dataclasses.asdict(host), carry=dist.to_global(dist.unshard(carry)._asdict()), key=base_key)
    meta = dict(meta, format=CHECKPOINT_FORMAT, step=step, stage=stage.spec.index, stage_start=stage.spec.start,
                total_steps=scheduler.total_steps, iterator=to_jsonable(iterator_state))
    return checkpointer.save(step, tree, meta)


class RestoredRun(NamedTuple):
    step: int
    meta: dict
    stage: Stage
    state: TrainState  # replicated
    carry: TrainCarry  # sharded
    base_key: np.ndarray


def restore_run_state(checkpointer: Checkpointer, scheduler: CurriculumScheduler,
                      build_stage: Callable[[object], Stage],
                      state_shapes: Callable[[object], TrainState], key_template: np.ndarray) -> RestoredRun:
    """The newest intact checkpoint (see Checkpointer.restore_latest), its stage rebuilt with
    `build_stage(spec)` and its data iterator set to the saved position. `state_shapes(model)` gives
    the TrainState's shapes, `key_template` the base key's."""
    built = {}

    def target(step: int, meta: dict):
        index = meta.get("stage", -1)
        if (meta.get("format") != CHECKPOINT_FORMAT or not 0 <= index < len(scheduler)
                or scheduler.stages[index].start != meta.get("stage_start")):
            raise TRMError(f"checkpoint {checkpointer.directory}/{step} was written by a run with a different "
                           "curriculum; resume with the run's config.yaml or start a new run_dir")
        spec = scheduler.stages[index]
        stage = built[step] = build_stage(spec)
        shapes = state_shapes(stage.model)
        state_t = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dataclasses.asdict(shapes))
        sharding = dist.global_batch_sharding()
        carry_t = jax.tree.map(lambda x: jax.ShapeDtypeStruct((spec.batch_size,) + x.shape[1:], x.dtype,
                                                              sharding=sharding),
                               empty_train_carry(1, stage.model)._asdict())
        return dict(state=state_t, carry=carry_t, key=np.zeros_like(key_template))

    step, meta, out = checkpointer.restore_latest(target)
    total = scheduler.total_steps
    if meta.get("total_steps") != total:
        log.warning("resuming a run of %s steps as a run of %d steps: the learning-rate schedule is stretched "
                    "accordingly", meta.get("total_steps"), total)
    if step >= total:
        log.warning("the checkpoint is at step %d, the end of this run (%d steps); raise training.steps to train "
                    "further", step, total)
    stage = built[step]
    stage.iterator.load_state_dict(meta["iterator"])
    state = dist.replicate(TrainState(**out["state"]))
    carry = dist.put_sharded(dist.shard(TrainCarry(**dist.from_global(out["carry"]))))
    return RestoredRun(step, meta, stage, state, carry, np.asarray(out["key"]))

