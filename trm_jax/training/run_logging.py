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
        self._saved = (pkg.level, pkg.propagate, steps.propagate)
        forward = _ForwardToRoot(pkg.getEffectiveLevel())
        pkg.setLevel(min(pkg.getEffectiveLevel(), logging.INFO))
        pkg.propagate = False
        pkg.addHandler(handler)
        pkg.addHandler(forward)
        steps.propagate = not progress_bar
        if progress_bar:
            steps.addHandler(handler)
        self._handler = handler
        self._attached = [(pkg, handler), (pkg, forward), (steps, handler)]

    def close(self) -> None:
        if not self._attached:
            return
        for lg, h in self._attached:
            lg.removeHandler(h)
        self._handler.close()
        self._attached = []
        pkg, steps = logging.getLogger("trm_jax"), logging.getLogger(STEPS_LOGGER)
        pkg.level, pkg.propagate, steps.propagate = self._saved


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
