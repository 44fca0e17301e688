"""Orbax checkpoints of a training run: the Checkpointer, and a run's whole state saved and restored with it.

Each checkpoint (run_dir/checkpoints/<step>/) is a Composite of
- `state`: the unreplicated TrainState (params, EMA params, optimizer state, step, non-finite
  counter), the base RNG key, and the training carry as globally sharded arrays (every host writes
  its own slots, so multi-host runs keep every slot);
- `meta`: JSON with the step, curriculum stage, data-iterator state, epoch and run facts, plus a
  CRC32 of every host array in `state` (the replicated train state and key; not the sharded carry).
Together they let `--resume` continue the exact trajectory.

Faults: Orbax writes each step into `<step>.orbax-checkpoint-tmp*` and renames it when complete, so a
killed run leaves at most a temporary directory (removed when the next run opens the directory).
Reading: one walk over the steps, newest first, serves both readers. `restore_latest` (resume)
restores the whole state of the newest step that reads back intact (readable, checksums match),
moving damaged steps aside to `<step>.damaged`; `restore_weights` (`trm_jax.load`) restores only
the params or EMA params as NumPy arrays, from a Checkpointer opened with `read_only=True` (nothing
in the directory is changed). A failed write (disk full, read-only directory) is a TRMError that
names the directory and the last complete step.

Layout of the saved `state` item (`save_run_state`): {"state": TrainState fields, "carry": the carry as
globally sharded arrays, "key": the base RNG key}; the JSON meta holds the step, the stage, the data
iterator's state (after the last batch a step consumed), the callbacks' state and run facts.
`WEIGHT_FIELDS` names the TrainState fields that hold weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import zlib
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from trm_jax.errors import TRMError
from trm_jax.models import PUZZLE_EMB
from trm_jax.training import distributed as dist
from trm_jax.training.run_dir import to_jsonable
from trm_jax.training.stages import CurriculumScheduler, Stage
from trm_jax.training.state import TrainState, split_table
from trm_jax.training.step import TrainCarry, empty_train_carry

log = logging.getLogger(__name__)

# what a failed checkpoint write or restore raises from inside Orbax/TensorStore (I/O errors surface as
# ValueError "RESOURCE_EXHAUSTED: ... No space left on device", "DATA_LOSS: ...", "OUT_OF_RANGE: ...")
_IO_ERRORS = (OSError, ValueError, RuntimeError)


# `restore_weights(which=...)` -> the TrainState field holding those weights
WEIGHT_FIELDS = {"ema": "ema_params", "params": "params"}


def short_error(e: BaseException, limit: int = 300) -> str:
    """`Type: message` of an exception on one line, cut to `limit` characters (Orbax and TensorStore
    errors carry multi-kB specs)."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[:limit] + " ..."


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence one logger for a block: Orbax's async reads log every failed future on "asyncio" at
    ERROR with a multi-kB TensorStore spec (a damaged checkpoint is reported once, by us); a read-only
    CheckpointManager warns on "absl" that it is read-only (as asked)."""
    lg = logging.getLogger(logger_name)
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(old)


class _DamagedStep(Exception):
    """A step whose meta cannot be read or whose arrays do not match the checksums saved with it."""


def tree_checksums(tree) -> dict:
    """CRC32 (hex) of every NumPy leaf of `tree`, keyed by its path (`jax.tree_util.keystr`)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, (np.ndarray, np.generic)):
            data = np.ascontiguousarray(leaf).reshape(-1).view(np.uint8)
            out[jax.tree_util.keystr(path)] = f"{zlib.crc32(data):08x}"
    return out


def damaged_leaves(tree, checksums: Optional[dict]) -> list[str]:
    """Paths of leaves of a restored `tree` whose CRC32 differs from `checksums` (saved with the step)."""
    if not checksums:
        return []  # a checkpoint written before checksums existed: nothing to compare
    actual = tree_checksums(jax.tree.map(np.asarray, tree))
    return [key for key, crc in actual.items() if key in checksums and crc != checksums[key]]


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` (keep-N, async writes, atomic commits).

    `read_only=True` opens an existing directory for reading only: no write probe, no cleanup of
    temporary directories, no setting aside of damaged steps, and `save` is refused.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        self.directory = os.path.abspath(os.fspath(directory))
        self.read_only = read_only
        self._pending: Optional[int] = None  # step of an async write not yet known to be complete
        self._failed = False
        if read_only:
            if not os.path.isdir(self.directory):
                raise TRMError(f"no checkpoint directory {self.directory}; pass the run_dir training wrote")
            with _quiet("absl"):
                self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
                    read_only=True, create=False))
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
            probe = os.path.join(self.directory, f".write_test.{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise TRMError(f"cannot write checkpoints to {self.directory} ({short_error(e)}); make it a writable "
                           "directory (not a file) or set run_dir to a writable location") from None
        # cleanup_tmp_directories: a run killed during an async save leaves <step>.orbax-checkpoint-tmp*
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def _complete_steps(self) -> list[int]:
        """Steps whose directory was committed (the atomic rename happened), read from disk."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(int(d) for d in names if d.isdigit())

    def _write_error(self, step: Optional[int], e: BaseException) -> TRMError:
        self._failed = True
        done = [s for s in self._complete_steps() if s != step]
        last = (f"the last complete checkpoint is step {done[-1]}" if done else "no checkpoint was completed")
        what = f"checkpoint step {step}" if step is not None else "a checkpoint"
        return TRMError(f"could not write {what} to {self.directory} ({short_error(e)}); free disk space or make the "
                        f"directory writable (or set run_dir to another disk), then rerun with --resume: {last}, "
                        "earlier checkpoints are untouched")

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Save unless a checkpoint for `step` exists already. `state` holds host/global arrays."""
        if self.read_only:
            raise TRMError(f"the checkpoints in {self.directory} were opened read-only; open a Checkpointer "
                           "without read_only=True to save")
        if step in self.manager.all_steps():
            return False
        meta = dict(meta, checksums=tree_checksums(state))
        pending, self._pending = self._pending, step
        try:
            self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
        except _IO_ERRORS as e:  # an async save first waits for the previous one: its error shows here
            late = pending is not None and pending != step and pending not in self._complete_steps()
            raise self._write_error(pending if late else step, e) from e
        log.info("checkpoint: step %d -> %s", step, self.directory)
        return True

    def delete_all(self) -> None:
        for step in self.manager.all_steps():
            self.manager.delete(step)

    def candidate_steps(self, step: Optional[int] = None) -> list[int]:
        """Steps a read tries, newest first: every step, or only `step`. TRMError when there is none
        or `step` is not among them."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise TRMError(f"{self.directory} holds no checkpoint; train first (python scripts/train.py --config ...)")
        if step is None:
            return steps
        if step not in steps:
            raise TRMError(f"{self.directory} has no checkpoint for step {step}; available steps: {sorted(steps)}")
        return [step]

    def read_meta(self, step: int) -> dict:
        """The JSON meta saved with `step` (what the trainer wrote: step, stage, iterator, ...)."""
        try:
            with _quiet("asyncio"):
                return dict(self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
        except Exception as e:  # a missing or garbled JSON file: Orbax/JSON raise several types
            raise _DamagedStep(f"unreadable meta ({short_error(e)})") from None

    @staticmethod
    def _verified(state, meta: dict):
        damaged = damaged_leaves(state, meta.get("checksums"))
        if damaged:
            raise _DamagedStep(f"checksum mismatch in {len(damaged)} array(s), e.g. {damaged[0]}")
        return state

    def _newest_readable(self, steps: list[int], read: Callable[[int], Any]):
        """`(step, read(step), failures)` for the first of `steps` that `read` returns for, or
        `(None, None, failures)`; failures are `(step, reason, damaged)`. A TRMError from `read` (a
        checkpoint of another run) is not retried."""
        failures: list[tuple[int, str, bool]] = []
        for step in steps:
            try:
                return step, read(step), failures
            except TRMError:
                raise
            except Exception as e:  # Orbax/TensorStore raise many types for damaged or non-fitting files
                damaged = isinstance(e, _DamagedStep)
                failures.append((step, str(e) if damaged else short_error(e), damaged))
                if step != steps[-1]:
                    log.warning("checkpoint %s/%d is damaged, incomplete or does not fit (%s); trying the previous "
                                "checkpoint", self.directory, step, failures[-1][1])
        return None, None, failures

    def restore_latest(self, build_target: Callable[[int, dict], Any]) -> tuple[int, dict, Any]:
        """`(step, meta, state)` of the newest checkpoint that reads back intact (resume).

        `build_target(step, meta)` gives the restore target for a step (it may raise TRMError for a
        checkpoint of another run: that is not retried). A step whose meta or state cannot be read, or
        whose arrays fail their checksum, is reported with a warning and the previous step is tried;
        damaged steps are then moved aside to `<step>.damaged` so the resumed run can write that step
        again. No intact step: a TRMError naming the directory.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise TRMError(f"no checkpoint in {self.directory}; drop --resume to start a new run")

        def read(step):
            meta = self.read_meta(step)
            target = build_target(step, meta)
            with _quiet("asyncio"):
                state = self.manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
            return meta, self._verified(state, meta)

        step, out, bad = self._newest_readable(steps, read)
        if step is None:
            details = "; ".join(f"step {s}: {r}" for s, r, _ in bad)
            raise TRMError(f"no checkpoint in {self.directory} could be restored ({details}). If the run's config "
                           "changed, resume with the config it was started with (run_dir/config.yaml); if the "
                           "files are damaged, start a new run_dir")
        if bad:
            self._set_aside([s for s, _, _ in bad])
            log.warning("resuming from checkpoint step %d instead of the damaged step(s) %s (%s in %s)", step,
                        ", ".join(str(s) for s, _, _ in bad),
                        "left in place: read-only" if self.read_only else "moved aside to <step>.damaged",
                        self.directory)
        meta, state = out
        return step, meta, state

    def restore_weights(self, target, *, step: Optional[int] = None, which: str = "ema",
                        target_desc: str = "the requested parameters") -> tuple[int, Any]:
        """`(step, weights)`: the params (`which="params"`) or EMA params (`"ema"`) of checkpoint
        `step` as host NumPy arrays, shaped like `target` (a pytree of arrays or ShapeDtypeStructs);
        nothing else (optimizer state, carry) is read.

        With `step=None`, the newest step whose weights read back intact: a damaged step (unreadable,
        checksum mismatch) or one that does not fit `target` is reported with a warning and the
        previous one is tried. Nothing is moved or deleted. No step fits: a TRMError saying whether
        the checkpoints are damaged or do not fit `target_desc`.
        """
        if which not in WEIGHT_FIELDS:
            raise TRMError(f"restore_weights(which={which!r}): use one of {sorted(WEIGHT_FIELDS)}")
        field = WEIGHT_FIELDS[which]
        steps = self.candidate_steps(step)
        zeros = functools.partial(jax.tree.map, lambda s: np.zeros(s.shape, s.dtype))
        # the puzzle-embedding table has no EMA copy: the EMA weights go with the live table
        dense, table = split_table(target) if which == "ema" else (target, None)
        tree = {"state": {field: zeros(dense)}}
        if table is not None:
            tree["state"]["params"] = {PUZZLE_EMB: zeros(table)}
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)

        def read(s):
            meta = self.read_meta(s)
            with _quiet("asyncio"):
                restored = self.manager.restore(s, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                    item=tree, restore_args=restore_args, partial_restore=True)))["state"]
            state = self._verified(restored, meta)["state"]
            return state[field] if table is None else {**state[field], PUZZLE_EMB: state["params"][PUZZLE_EMB]}

        found, weights, failures = self._newest_readable(steps, read)
        if found is None:
            s0, err, _ = failures[0]
            if failures[-1][2]:
                raise TRMError(f"no intact checkpoint in {self.directory} (step {s0}: {err}); load a run with a "
                               "complete checkpoint, or resume training to write a new one")
            raise TRMError(f"checkpoint {self.directory}/{s0} does not fit {target_desc} ({err}); the run directory "
                           "may be incomplete or from another trm_jax version")
        if failures:
            log.warning("loaded checkpoint step %d instead of the damaged step %d", found, failures[0][0])
        return found, weights

    def _set_aside(self, steps: list[int]) -> None:
        if self.read_only:
            return
        if jax.process_index() == 0:
            for step in steps:
                src = os.path.join(self.directory, str(step))
                dst, n = f"{src}.damaged", 1
                while os.path.exists(dst):
                    n += 1
                    dst = f"{src}.damaged{n}"
                try:
                    os.rename(src, dst)
                except OSError as e:
                    raise TRMError(f"could not move the damaged checkpoint {src} aside ({short_error(e)}); delete "
                                   "it and resume again") from None
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("trm_jax_checkpoint_set_aside")
        self.manager.reload()

    def wait(self) -> None:
        """Block until async writes finished; a failed write is a TRMError (reported once)."""
        try:
            self.manager.wait_until_finished()
        except _IO_ERRORS as e:
            if self._failed:  # already reported by save(); close() after that error must not mask it
                log.debug("checkpoint write error after a reported failure: %s", short_error(e))
                return
            raise self._write_error(self._pending, e) from e
        self._pending = None

    def close(self) -> None:
        self.wait()
        self.manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_weights_checkpoint(ckpt_dir: str, step: int, params, ema_params, meta: dict) -> None:
    """A checkpoint directory holding one step of weights only, in the layout a training checkpoint has for
    them ({"state": {step, params, ema_params}}: what `trm_jax.load` reads): for runs written from weights
    (an imported checkpoint, an adapted run). A directory that already holds checkpoints is refused."""
    if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise TRMError(f"{os.path.dirname(ckpt_dir)} already holds checkpoints; write to a new directory")
    host = lambda tree: jax.tree.map(np.asarray, tree)  # noqa: E731
    state = {"step": np.int32(step), "params": host(params), "ema_params": host(ema_params)}
    with Checkpointer(ckpt_dir, keep=1, async_save=False) as checkpoints:
        checkpoints.save(step, {"state": state}, {"step": step, **meta})
        checkpoints.wait()


# ------------------------------------------------------------------------------ a run's whole state

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

