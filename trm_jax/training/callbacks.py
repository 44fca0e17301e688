"""Trainer callbacks: the loop's hooks, and the built-in ones (early stopping, best checkpoint, time budget).

    class PrintLoss:  # or PrintLoss(trm_jax.training.Callback): the base class only documents the hooks
        metrics_every = 100  # on_step gets host metrics every 100th step (one device sync each), else None
        def on_step(self, trainer, step, metrics):
            if metrics is not None:
                print(step, metrics["loss"])

    Trainer(model, data, callbacks=[PrintLoss()])()

A callback stops training with `trainer.request_stop(reason)`: the loop finishes the current step,
writes a checkpoint and returns (`result.interrupted`, `result.stop_reason`); `--resume` continues.
A callback with state that a resumed run must continue (patience, time spent) returns it from
`state_dict()`: it is saved in every checkpoint's meta and handed back to `load_state_dict()`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable, Iterable, Optional

from trm_jax.config import EVAL_METRIC_MODES, TRMConfig
from trm_jax.errors import ConfigError, TRMError
from trm_jax.training import distributed as dist
from trm_jax.training.checkpoints import Checkpointer
from trm_jax.training.evaluation import summarize
from trm_jax.training.run_dir import BEST_DIR
from trm_jax.training.stages import num_samples

log = logging.getLogger(__name__)


HOOKS = ("on_train_start", "on_step", "on_eval", "on_train_end")


class Callback:
    """Hooks of the training loop; every one is optional.

    Subclassing is optional too: any object with one or more of these methods is a callback, and a hook
    (or `metrics_every`, `state_dict`, `load_state_dict`) it lacks is not called. Pass callbacks as
    `Trainer(..., callbacks=[...])`.

    Attributes:
        metrics_every: What `on_step` gets as `metrics`: 0 = always None (no device sync); N = the step's
            training metrics as host floats (loss, ce, halt_loss, token_accuracy, exact_accuracy, lr,
            grad_norm, ...) every Nth step, None otherwise.
    """

    metrics_every: int = 0

    def on_train_start(self, trainer) -> None:
        """Before the first step (after a resume restored the run).

        Args:
            trainer: The `Trainer` (its `step`, `config`, `stage`, `run_dir`, `evaluate()`,
                `request_stop()`, `save_checkpoint()`, ...).
        """

    def on_step(self, trainer, step: int, metrics: Optional[dict]) -> None:
        """After each optimizer step.

        Args:
            trainer: The `Trainer`.
            step: Steps done (1 after the first).
            metrics: The step's training metrics as host floats, every `metrics_every`th step; else None.
        """

    def on_eval(self, trainer, step: int, results: dict) -> None:
        """After each held-out evaluation (every training.eval_every steps and at the end).

        Args:
            trainer: The `Trainer`.
            step: Steps done.
            results: The evaluation's metrics (a copy), as `Trainer.evaluate` returns them, with eval_time_s.
        """

    def on_train_end(self, trainer, result) -> None:
        """After the last checkpoint.

        Args:
            trainer: The `Trainer`.
            result: The `TrainResult` that `train()` returns.
        """

    def state_dict(self) -> Optional[dict]:
        """JSON-able state a resumed run continues from (saved in every checkpoint's meta).

        Returns:
            The state, or None: nothing to save.
        """
        return None

    def load_state_dict(self, state: dict) -> None:
        """Continue from the state `state_dict` returned, when a run resumes.

        Args:
            state: What `state_dict` returned when the checkpoint was written.
        """


class CallbackList:
    """The run's callbacks, called in order, each only with the hooks it has; host metrics are fetched
    once per step, only when asked."""

    def __init__(self, callbacks: Iterable = ()):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not any(callable(getattr(c, hook, None)) for hook in HOOKS):
                raise TRMError(f"callbacks: {c!r} has none of the hooks {', '.join(HOOKS)}; pass objects with one or "
                               "more of these methods (e.g. on_step(self, trainer, step, metrics))")
        names = [type(c).__name__ for c in self.callbacks]
        self.names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]

    def _call(self, hook: str, *args) -> None:
        for c in self.callbacks:
            fn = getattr(c, hook, None)
            if fn is not None:
                fn(*args)

    def on_train_start(self, trainer) -> None:
        self._call("on_train_start", trainer)

    def on_step(self, trainer, step: int, device_metrics) -> None:
        host = None
        for c in self.callbacks:
            fn = getattr(c, "on_step", None)
            if fn is None:
                continue
            every = getattr(c, "metrics_every", 0)
            if every and step % every == 0:
                if host is None:
                    host = summarize([dist.unreplicate(device_metrics)])
                fn(trainer, step, dict(host))
            else:
                fn(trainer, step, None)

    def on_eval(self, trainer, step: int, results: dict) -> None:
        for c in self.callbacks:
            fn = getattr(c, "on_eval", None)
            if fn is not None:
                fn(trainer, step, dict(results))

    def on_train_end(self, trainer, result) -> None:
        self._call("on_train_end", trainer, result)

    def state_dict(self) -> dict:
        out = {n: c.state_dict() for n, c in zip(self.names, self.callbacks) if hasattr(c, "state_dict")}
        return {n: s for n, s in out.items() if s is not None}

    def load_state_dict(self, states: dict) -> None:
        for n, c in zip(self.names, self.callbacks):
            if n in states and hasattr(c, "load_state_dict"):
                c.load_state_dict(states[n])


def metric_mode(metric: str) -> str:
    """"max" or "min": which way `metric` improves (the held-out metrics' own; else max for names with
    "accuracy", min for the rest, which are loss-like)."""
    return EVAL_METRIC_MODES.get(metric, "max" if "accuracy" in metric else "min")


class _Best:
    """The best value of a metric so far, and whether a new value beats it by more than `min_delta`."""

    def __init__(self, metric: str, min_delta: float = 0.0, mode: Optional[str] = None):
        self.metric, self.min_delta, self.mode = metric, float(min_delta), mode or metric_mode(metric)
        self.value: Optional[float] = None
        self.step: Optional[int] = None

    def read(self, results: dict, key: str) -> Optional[float]:
        if self.metric not in results:
            if results:
                raise ConfigError(f"config key '{key}': the evaluation has no metric {self.metric!r} "
                                  f"(it has {', '.join(sorted(results))})")
            return None
        value = float(results[self.metric])
        return None if math.isnan(value) else value

    def improves(self, value: float) -> bool:
        if self.value is None:
            return True
        return value > self.value + self.min_delta if self.mode == "max" else value < self.value - self.min_delta

    def update(self, value: float, step: int) -> None:
        self.value, self.step = value, int(step)


def _needs_eval_set(trainer, key: str) -> None:
    eval_set = trainer.stage.eval_set
    if eval_set is None or num_samples(eval_set) == 0:
        raise ConfigError(f"config key '{key}' acts on held-out evaluations, and this run has no eval set (set "
                          "data.num_eval / data.eval_path, or pass eval_dataset); or turn it off")


class EarlyStopping(Callback):
    """Stop when `metric` has not improved by more than `min_delta` for `patience` evaluations in a row
    (`training.early_stopping`). Mode: max for accuracies, min for loss-like metrics."""

    def __init__(self, metric: str = "exact_accuracy", patience: int = 5, min_delta: float = 0.0,
                 mode: Optional[str] = None):
        if patience < 1:
            raise ConfigError(f"config key 'training.early_stopping.patience': must be > 0, got {patience}")
        self.best, self.patience, self.waited = _Best(metric, min_delta, mode), int(patience), 0

    def on_train_start(self, trainer) -> None:
        _needs_eval_set(trainer, "training.early_stopping")

    def on_eval(self, trainer, step, results) -> None:
        value = self.best.read(results, "training.early_stopping.metric")
        if value is None:
            return
        if self.best.improves(value):
            self.best.update(value, step)
            self.waited = 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.request_stop(f"early stopping: {self.best.metric} has not improved on {self.best.value:.4f} "
                                 f"(step {self.best.step}) for {self.waited} evaluations")

    def state_dict(self) -> dict:
        return dict(best=self.best.value, best_step=self.best.step, waited=self.waited)

    def load_state_dict(self, state: dict) -> None:
        self.best.value, self.best.step, self.waited = state["best"], state["best_step"], int(state["waited"])


class KeepBest(Callback):
    """Keep the checkpoint with the best `metric` in run_dir/best (`training.keep_best`): an Orbax
    directory of its own holding one step, replaced atomically (the new one is committed before the
    old one goes), never touched by training.keep_checkpoints. `trm_jax.load(run_dir, which="best")`
    reads it. At the start, steps past the run's own step (a resumed run redoes them) are dropped."""

    def __init__(self, metric: str = "exact_accuracy", mode: Optional[str] = None):
        self.best = _Best(metric, 0.0, mode)

    def _open(self, trainer) -> Checkpointer:
        return Checkpointer(os.path.join(trainer.run_dir, BEST_DIR), keep=1, async_save=False)

    def on_train_start(self, trainer) -> None:
        _needs_eval_set(trainer, "training.keep_best")
        with self._open(trainer) as best:
            for step in best.all_steps():
                if step > trainer.step:
                    best.manager.delete(step)
            kept = best.all_steps()
            if not kept:
                return
            try:
                saved = best.read_meta(kept[-1]).get("best", {})
            except Exception as e:  # a damaged meta file: Orbax and JSON raise several types
                log.warning("best checkpoint %s/%d is unreadable (%s); the best is tracked anew", best.directory,
                            kept[-1], e)
                return
            if saved.get("metric") == self.best.metric and isinstance(saved.get("value"), (int, float)):
                self.best.update(saved["value"], kept[-1])

    def on_eval(self, trainer, step, results) -> None:
        value = self.best.read(results, "training.keep_best")
        if value is None or not self.best.improves(value):
            return
        self.best.update(value, step)
        with self._open(trainer) as best:
            trainer.save_checkpoint(best, best=dict(metric=self.best.metric, value=value))
        log.info("best checkpoint: step %d, %s %.4f -> %s", step, self.best.metric, value, best.directory)


class TimeBudget(Callback):
    """Stop after `minutes` of wall-clock time in `train()` (`training.max_time_minutes`: compilation,
    evaluations and checkpoints count), ending as the last step does: final evaluation and checkpoint.
    `count_evaluations=False` leaves the held-out evaluations' time out (each one's `eval_time_s`, measured
    after the steps in flight finished): a budget of training time. The time spent is saved in
    checkpoints, so a resumed run trains only what is left (raise the budget to train further). `clock`
    (seconds) is injectable for tests."""

    def __init__(self, minutes: float, *, count_evaluations: bool = True, clock: Callable[[], float] = time.monotonic):
        self.budget_s, self.count_evaluations, self.clock = float(minutes) * 60.0, count_evaluations, clock
        self.spent_before = 0.0  # seconds spent by the run before this train() call (a resume)
        self.excluded = 0.0  # evaluation seconds left out of this call's time
        self._start: Optional[float] = None

    def spent(self) -> float:
        """Seconds of the budget spent so far."""
        now = 0.0 if self._start is None else self.clock() - self._start - self.excluded
        return self.spent_before + now

    def on_train_start(self, trainer) -> None:
        self._start, self.excluded = self.clock(), 0.0
        self._check(trainer)

    def on_step(self, trainer, step, metrics) -> None:
        self._check(trainer)

    def on_eval(self, trainer, step, results) -> None:
        if not self.count_evaluations:
            self.excluded += float(results.get("eval_time_s", 0.0))

    def _check(self, trainer) -> None:
        if self.spent() >= self.budget_s:
            trainer.request_stop(f"time budget: {self.spent() / 60:.2f} of {self.budget_s / 60:g} minutes spent",
                                 final_eval=True)

    def state_dict(self) -> dict:
        return dict(spent_s=self.spent())

    def load_state_dict(self, state: dict) -> None:
        self.spent_before = float(state["spent_s"])


def config_callbacks(config: TRMConfig) -> list[Callback]:
    """The built-in callbacks `config.training` turns on, in the order they run."""
    cfg, out = config.training, []
    if cfg.keep_best is not None:
        out.append(KeepBest(cfg.keep_best))
    es = cfg.early_stopping
    if es is not None and es.patience is not None:
        out.append(EarlyStopping(es.metric, es.patience, es.min_delta))
    if cfg.max_time_minutes is not None:
        out.append(TimeBudget(cfg.max_time_minutes))
    return out


__all__ = ["HOOKS", "Callback", "CallbackList", "EarlyStopping", "KeepBest", "TimeBudget", "config_callbacks",
           "metric_mode"]
