"""Orbax checkpoints of a training run.

Each checkpoint (run_dir/checkpoints/<step>/) is a Composite of
- `state`: the unreplicated TrainState (params, EMA params, optimizer state, step, non-finite
  counter), the base RNG key, and the training carry as globally sharded arrays (every host writes
  its own slots, so multi-host runs keep every slot);
- `meta`: JSON with the step, curriculum stage, data-iterator state, epoch and run facts, plus a
  CRC32 of every host array in `state` (the replicated train state and key; not the sharded carry).
Together they let `--resume` continue the exact trajectory.

Faults: Orbax writes each step into `<step>.orbax-checkpoint-tmp*` and renames it when complete, so a
killed run leaves at most a temporary directory (removed when the next run opens the directory).
`restore_latest` verifies the newest step (readable, checksums match) and falls back to the previous
good one with a warning, moving a damaged step aside to `<step>.damaged`. A failed write (disk full,
read-only directory) is a TRMError that names the directory and the last complete step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from trm_jax.errors import TRMError

log = logging.getLogger(__name__)

# what a failed checkpoint write or restore raises from inside Orbax/TensorStore (I/O errors surface as
# ValueError "RESOURCE_EXHAUSTED: ... No space left on device", "DATA_LOSS: ...", "OUT_OF_RANGE: ...")
_IO_ERRORS = (OSError, ValueError, RuntimeError)


def _short(e: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[:limit] + " ..."


@contextlib.contextmanager
def _quiet_asyncio():
    """Orbax's async reads log every failed future at ERROR with a multi-kB TensorStore spec; a damaged
    checkpoint is reported once, by us."""
    lg = logging.getLogger("asyncio")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(old)


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
    """Thin wrapper over `ocp.CheckpointManager` (keep-N, async writes, atomic commits)."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(self.directory, exist_ok=True)
            probe = os.path.join(self.directory, f".write_test.{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise TRMError(f"cannot write checkpoints to {self.directory} ({_short(e)}); make it a writable "
                           "directory (not a file) or set run_dir to a writable location") from None
        # cleanup_tmp_directories: a run killed during an async save leaves <step>.orbax-checkpoint-tmp*
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: Optional[int] = None  # step of an async write not yet known to be complete
        self._failed = False

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
        return TRMError(f"could not write {what} to {self.directory} ({_short(e)}); free disk space or make the "
                        f"directory writable (or set run_dir to another disk), then rerun with --resume: {last}, "
                        "earlier checkpoints are untouched")

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Save unless a checkpoint for `step` exists already. `state` holds host/global arrays."""
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

    def restore_latest(self, build_target: Callable[[int, dict], Any]) -> tuple[int, dict, Any]:
        """`(step, meta, state)` of the newest checkpoint that reads back intact.

        `build_target(step, meta)` gives the restore target for a step (it may raise TRMError for a
        checkpoint of another run: that is not retried). A step whose meta or state cannot be read, or
        whose arrays fail their checksum, is reported with a warning and the previous step is tried;
        damaged steps are then moved aside to `<step>.damaged` so the resumed run can write that step
        again. No intact step: a TRMError naming the directory.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise TRMError(f"no checkpoint in {self.directory}; drop --resume to start a new run")
        bad: list[tuple[int, str]] = []
        for step in steps:
            try:
                with _quiet_asyncio():
                    meta = dict(self.manager.restore(
                        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
                target = build_target(step, meta)
                with _quiet_asyncio():
                    state = self.manager.restore(
                        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
                damaged = damaged_leaves(state, meta.get("checksums"))
                if damaged:
                    raise ValueError(f"checksum mismatch in {len(damaged)} array(s), e.g. {damaged[0]}")
            except TRMError:
                raise
            except Exception as e:  # Orbax/TensorStore/JSON raise many types for damaged files
                reason = _short(e)
                log.warning("checkpoint %s/%d is damaged or incomplete (%s); trying the previous checkpoint",
                            self.directory, step, reason)
                bad.append((step, reason))
                continue
            if bad:
                self._set_aside([s for s, _ in bad])
                log.warning("resuming from checkpoint step %d instead of the damaged step(s) %s (moved aside "
                            "to <step>.damaged in %s)", step, ", ".join(str(s) for s, _ in bad), self.directory)
            return step, meta, state
        details = "; ".join(f"step {s}: {r}" for s, r in bad)
        raise TRMError(f"no checkpoint in {self.directory} could be restored ({details}). If the run's config "
                       "changed, resume with the config it was started with (run_dir/config.yaml); if the files "
                       "are damaged, start a new run_dir")

    def _set_aside(self, steps: list[int]) -> None:
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
                    raise TRMError(f"could not move the damaged checkpoint {src} aside ({_short(e)}); delete "
                                   "it and resume again") from None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("trm_jax_checkpoint_set_aside")
        self.manager.reload()

    def wait(self) -> None:
        """Block until async writes finished; a failed write is a TRMError (reported once)."""
        try:
            self.manager.wait_until_finished()
        except _IO_ERRORS as e:
            if self._failed:  # already reported by save(); close() after that error must not mask it
                log.debug("checkpoint write error after a reported failure: %s", _short(e))
                return
            raise self._write_error(self._pending, e) from e
        self._pending = None

    def close(self) -> None:
        self.wait()
        self.manager.close()


def abstract_like(tree):
    """ShapeDtypeStructs (keeping shardings of jax arrays) as an Orbax restore target."""
    def spec(x):
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x
    return jax.tree.map(spec, tree)
