"""The run's log file: train.log gets INFO and up while the console keeps the level the user chose."""

from __future__ import annotations

import logging
import os

STEPS_LOGGER = "trm_jax.training.steps"  # per-window lines; kept off the console under a progress bar


class RunLog:
    """Attached on creation, detached by `close()` (idempotent), restoring the loggers as they were.

    A forwarding handler replaces propagation, so raising the package level for the file does not
    unmute the console; with a progress bar, per-window lines go to the file only."""

    def __init__(self, run_dir: str, process_index: int, progress_bar: bool):
        name = "train.log" if process_index == 0 else f"train.{process_index}.log"
        handler = logging.FileHandler(os.path.join(run_dir, name))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg, steps = logging.getLogger("trm_jax"), logging.getLogger(STEPS_LOGGER)
        if not _open_logs:  # the first open run log rewires the loggers; the last to close restores them
            _saved[:] = [pkg.level, pkg.propagate, steps.propagate, _ForwardToRoot(pkg.getEffectiveLevel())]
            pkg.setLevel(min(pkg.getEffectiveLevel(), logging.INFO))
            pkg.propagate = False
            pkg.addHandler(_saved[3])
            steps.propagate = not progress_bar
        pkg.addHandler(handler)
        if progress_bar:
            steps.addHandler(handler)
        self._handler = handler
        _open_logs.append(self)

    def close(self) -> None:
        if self not in _open_logs:
            return
        _open_logs.remove(self)
        pkg, steps = logging.getLogger("trm_jax"), logging.getLogger(STEPS_LOGGER)
        pkg.removeHandler(self._handler)
        steps.removeHandler(self._handler)
        self._handler.close()
        if not _open_logs:
            pkg.level, pkg.propagate, steps.propagate, forward = _saved
            pkg.removeHandler(forward)


# Trainers that were never trained or closed may overlap: the console forwarding is installed once.
_open_logs: list[RunLog] = []
_saved: list = []


class _ForwardToRoot(logging.Handler):
    """Passes records at or above `threshold` to the root logger's handlers (or logging's last resort)."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def emit(self, record):
        if record.levelno < self.threshold:
            return
        root = logging.getLogger()
        if not root.handlers:
            if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
            return
        for h in root.handlers:
            if record.levelno >= h.level:
                h.handle(record)
