"""Orbax checkpoints of a training run.

Each checkpoint (run_dir/checkpoints/<step>/) is a Composite of
- `state`: the unreplicated TrainState (params, EMA params, optimizer state, step, non-finite
  counter), the base RNG key, and the training carry as globally sharded arrays (every host writes
  its own slots, so multi-host runs keep every slot);
- `meta`: JSON with the step, curriculum stage, data-iterator state, epoch and run facts.
Together they let `--resume` continue the exact trajectory.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from trm_jax.errors import TRMError

log = logging.getLogger(__name__)


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` (keep-N, async writes, atomic commits)."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Save unless a checkpoint for `step` exists already. `state` holds host/global arrays."""
        if step in self.manager.all_steps():
            return False
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        log.info("checkpoint: step %d -> %s", step, self.directory)
        return True

    def delete_all(self) -> None:
        for step in self.manager.all_steps():
            self.manager.delete(step)

    def read_meta(self, step: Optional[int] = None) -> tuple[int, dict]:
        step = self.latest_step() if step is None else step
        if step is None:
            raise TRMError(f"no checkpoint in {self.directory}; drop --resume to start a new run")
        out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return step, dict(out["meta"])

    def restore(self, step: int, target: Any) -> Any:
        """Restore `state` into the structure/shapes of `target` (arrays or ShapeDtypeStructs)."""
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        except (ValueError, KeyError) as e:
            raise TRMError(f"checkpoint {self.directory}/{step} does not match this config's model/optimizer "
                           f"({e}); resume with the config the run was started with "
                           "(run_dir/config.yaml)") from None
        return out["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(tree):
    """ShapeDtypeStructs (keeping shardings of jax arrays) as an Orbax restore target."""
    def spec(x):
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x
    return jax.tree.map(spec, tree)
