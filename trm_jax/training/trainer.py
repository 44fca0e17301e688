"""Trainer: the training loop over curriculum stages (steps, metric windows, evaluations, checkpoints, stopping).

One loop iteration = one pmapped train step (one supervision step for every batch slot; with
`training.halted_samples: drop`, for the slots still running, see feed.py). The next batches are
read, augmented and put on device (feed.BatchFeed: in a background thread on accelerators, in the
loop's thread on CPU) while the step runs; the loop waits on the step QUEUE_DEPTH steps behind
(which bounds the dispatch queue and times steps for the monitor), reads metrics back once per
`training.log_every` window, and calls the callbacks, which carry everything optional (early stopping,
best checkpoint, time budget, yours). SIGTERM/SIGINT stop it after the current step, with a checkpoint.

The run the loop advances (stages, state, checkpoints, run directory) is a `TrainingRun` (run.py) the
Trainer holds; PyPI-style arguments become a config in pypi.py. `create_trainer` builds one from a
run config.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import jax
import numpy as np
from tqdm.auto import tqdm

from trm_jax.config import TRMConfig, apply_overrides, load_config
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models import TinyRecursiveModel
from trm_jax.tasks import get_task
from trm_jax.training import distributed as dist
from trm_jax.training.evaluation import held_out_metrics, log_results, nonfinite_runs, summarize
from trm_jax.training.feed import BatchFeed, put_rows, step_rows, take_rows
from trm_jax.training.pypi import trainer_inputs
from trm_jax.training.run import TrainingRun
from trm_jax.training.run_dir import STEPS_LOGGER
from trm_jax.training.stages import Stage
from trm_jax.training.state import inference_params

log = logging.getLogger(__name__)
steps_log = logging.getLogger(STEPS_LOGGER)

QUEUE_DEPTH = 2  # steps dispatched ahead of the one the loop waits on
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclasses.dataclass
class TrainResult:
    """What `Trainer.train()` returns.

    `params` (the EMA weights) is what to use for inference: `result.model.predict(result.params, tokens)`
    (or the model you built: `model.predict(result.params, tokens)`); `trm_jax.save_pretrained(result, dir)`
    saves it to share.

    Attributes:
        params: The weights to predict with: the EMA weights (with the puzzle-embedding table), as host
            arrays.
        raw_params: The optimizer's weights at the last step (no EMA).
        model: The `TinyRecursiveModel` of the last curriculum stage.
        config: The run's `TRMConfig`.
        tokenizer: The run's tokenizer.
        step: Optimizer steps done.
        eval: The last held-out evaluation's metrics ({} when there was none).
        metrics: Summary of the last logged training window.
        history: Every training record logged (as written to metrics.jsonl).
        eval_history: Every held-out evaluation, with its step and stage.
        run_dir: The run directory (a temporary one, deleted by then, for a PyPI-way run without `run_dir`).
        interrupted: Stopped before the last step (a signal, a callback): resume with `resume=True`
            (`--resume`).
        wall_time_s: Seconds `train()` took.
        stop_reason: Why it stopped early ("SIGTERM", "early stopping: ...", ...); None when it ran to
            the end.
    """

    params: Any
    raw_params: Any
    model: TinyRecursiveModel
    config: TRMConfig
    tokenizer: Any
    step: int
    eval: dict
    metrics: dict
    history: list
    eval_history: list
    run_dir: str
    interrupted: bool = False
    wall_time_s: float = 0.0
    stop_reason: Optional[str] = None


class Trainer:
    """Trains a TinyRecursiveModel with pmapped deep supervision, EMA and Orbax checkpoints.

    Two ways in, one loop:

    - the PyPI package's way: `Trainer(model, dataset, epochs=2, batch_size=16, ...)()`. The trained
      weights come back in the TrainResult (`result.params`; also `trainer.params`), never on `model`:
      `model.predict(result.params, tokens)`.
    - from a config: `Trainer(config=TRMConfig)` (what `create_trainer` does), which builds model and
      data per curriculum stage.

    `train()` (or calling the trainer) runs once and returns a `TrainResult`.

    Args:
        model: The PyPI way: the `TinyRecursiveModel` to train (a `TRMConfig` here counts as `config`).
        dataset: The PyPI way: `(inputs, labels)` arrays, a dict with those keys (and optionally
            `puzzle_ids`, `difficulty`), or an ArrayDataset.
        config: The config way: the run's `TRMConfig`; training options then go in the config, not in
            keyword arguments.
        epochs: The PyPI way: epochs to train when `steps` is not given; None = 2.
        steps: The PyPI way: optimizer steps to train (instead of epochs).
        batch_size: The PyPI way: the global batch; None = 16.
        halt_threshold: The PyPI way: the model's halting threshold (`halt_prob_thres` is accepted too).
        max_recursion_depth: The PyPI way: the model's cap on supervision steps (`max_recurrent_steps` is
            accepted too).
        eval_dataset: Held-out data beside `dataset` or `train_dataset`, in the forms of `dataset`.
        run_dir: Where checkpoints, config and metrics go. The PyPI way with None: a temporary directory
            that `close()` (the end of `train()`) deletes; pass `run_dir` to keep a run that
            `trm_jax.load` can read. The config way with None: `config.run_dir`.
        resume: Continue the run in `run_dir` from its latest checkpoint.
        tokenizer: The config way: the tokenizer; None = the task's.
        datasets_fn: The config way: `datasets_fn(seq_len, difficulty) -> (train, eval)`, called per
            curriculum stage.
        train_dataset: The config way: a fixed training set (with `eval_dataset`) instead of the task's
            data, at the run's `data.seq_len`; None = `datasets_fn`, else the task's datasets.
        async_checkpoints: Write checkpoints in the background while training goes on.
        overwrite: Let a new run replace the checkpoints already in `run_dir` (deleting them); without it
            (or `resume`) a `run_dir` with checkpoints is an error.
        seed: The PyPI way: the run's seed.
        callbacks: Objects with any of the hooks of `Callback`, called after the ones the config turns on.
        **training: The PyPI way: `training` config keys (learning_rate, weight_decay, warmup_steps,
            ema_decay, ...); `ema_decay_rate` is accepted for `ema_decay`.

    Raises:
        ConfigError: Both a model and `config`, neither, a model without `dataset`, training options as
            keyword arguments with `config`, a bad key or value, or data whose length is not the model's.
    """

    # batches prepared ahead in a background thread; 0 = in the loop's thread; None = 0 on CPU, where the
    # thread competes with XLA's compute threads for the cores (docs/performance.md, the training loop), else 2
    prefetch_batches: Optional[int] = None
    clock = staticmethod(time.perf_counter)  # times evaluations (eval_time_s); replaceable in tests

    def __init__(self, model: Optional[TinyRecursiveModel] = None, dataset=None, *,
                 config: Optional[TRMConfig] = None, epochs: Optional[float] = None, steps: Optional[int] = None,
                 batch_size: Optional[int] = None, halt_threshold: Optional[float] = None,
                 max_recursion_depth: Optional[int] = None, eval_dataset=None, run_dir: Optional[str] = None,
                 resume: bool = False, tokenizer=None, datasets_fn: Optional[Callable] = None, train_dataset=None,
                 async_checkpoints: bool = True, overwrite: bool = False, seed: int = 0,
                 callbacks: Iterable = (), **training):
        fixed_model, config, train_dataset, eval_dataset, run_path = trainer_inputs(
            model, dataset, config, train_dataset=train_dataset, eval_dataset=eval_dataset, run_dir=run_dir,
            epochs=epochs, steps=steps, batch_size=batch_size, halt_threshold=halt_threshold,
            max_recursion_depth=max_recursion_depth, seed=seed, training=training)
        self.run = TrainingRun(config, run_path=run_path, fixed_model=fixed_model, tokenizer=tokenizer,
                               datasets=(train_dataset, eval_dataset), datasets_fn=datasets_fn,
                               async_checkpoints=async_checkpoints, callbacks=callbacks, resume=resume,
                               overwrite=overwrite)
        self.history: list = []  # every training record logged
        self.eval_history: list = []
        self._stop = threading.Event()
        self._stop_reason: Optional[str] = None
        self._final_eval_on_stop = False
        self._idle_batches: dict = {}  # halted_samples=drop: device batches for steps that refill nothing
        self._step_keys = None  # the current feed's key for fold_in(step) (_feed)

    def __call__(self) -> "TrainResult":
        return self.train()

    # ------------------------------------------------------------------ what callbacks and users read

    @property
    def config(self) -> TRMConfig:
        """The run's config (with the model's vocabulary size filled in)."""
        return self.run.config

    @property
    def step(self) -> int:
        """Optimizer steps done (read on the host: no device sync)."""
        return self.run.step

    @property
    def stage(self) -> Optional[Stage]:
        """The current curriculum stage (its spec, model, train and eval sets); None before training."""
        return self.run.stage

    @property
    def run_dir(self) -> str:
        """The run directory: checkpoints, config, tokenizer, metrics.jsonl and logs."""
        return self.run.run_dir

    @property
    def tokenizer(self):
        """The run's tokenizer (None for a PyPI-way run given none: its model brings the vocabulary size)."""
        return self.run.tokenizer

    @property
    def params(self):
        """The weights to predict with at the current step (EMA + puzzle table), as host arrays.

        Raises:
            TRMError: Before training (no weights yet).
        """
        if self.run.state is None:
            raise TRMError("the trainer has no weights yet: call train() first")
        return dist.unreplicate(inference_params(self.run.state))

    def save_checkpoint(self, checkpointer=None, **meta) -> bool:
        """Save the whole run state at the current step.

        Args:
            checkpointer: Where to save; None = the run's checkpoints.
            **meta: JSON-able facts stored with the checkpoint.

        Returns:
            False when that step is saved already, else True.
        """
        return self.run.save_checkpoint(checkpointer, **meta)

    def close(self) -> None:
        """Wait for pending checkpoint writes, close metrics.jsonl and detach the log file (idempotent;
        `train()` ends with it)."""
        self.run.close()

    def request_stop(self, reason: str = "stop requested", *, final_eval: bool = False) -> None:
        """Stop after the current step with a checkpoint (what SIGTERM/SIGINT do).

        Args:
            reason: Why; the first request's reason is `result.stop_reason`.
            final_eval: Evaluate before stopping, as at the run's last step.
        """
        if not self._stop.is_set():
            self._stop_reason, self._final_eval_on_stop = reason, final_eval
        self._stop.set()

    def block_until_ready(self) -> None:
        """Wait until every dispatched step has finished (for timing from a callback)."""
        jax.block_until_ready(self.run.state)

    # ----------------------------------------------------------------------------------- evaluation

    def evaluate(self, params=None, *, stage: Optional[Stage] = None, halt_threshold: Optional[float] = None,
                 halting: Optional[str] = None, settle_steps: Optional[int] = None) -> dict:
        """Held-out metrics of the stage's eval set, via the model's predict.

        Every host evaluates the whole eval set on its local devices.

        Args:
            params: The weights; None = the current EMA weights.
            stage: The curriculum stage whose model and eval set are used; None = the current one.
            halt_threshold: With the halting head, a sample stops when its halting probability reaches
                this; None = `training.eval_halt_threshold`, else the model's (`NO_EARLY_HALT`: every
                sample runs max_recursion_depth steps).
            halting: The stop rule, "head" or "settled"; None = the model's (`model.halting`).
            settle_steps: For `halting="settled"`; None = the model's.

        Returns:
            exact_accuracy, token_accuracy, recursion_depth (mean supervision steps), settled_fraction,
            settled_exact_accuracy and num_samples; {} without an eval set.

        Raises:
            TRMError: No stage yet (call `train()` first).
        """
        stage = stage or self.stage
        if stage is None:
            raise TRMError("evaluate() needs a trained or restored model: call train() first")
        replicated = params is None
        params = inference_params(self.run.state) if replicated else params
        if halt_threshold is None:
            halt_threshold = self.config.training.eval_halt_threshold
        return held_out_metrics(stage.model, params, stage.eval_set, self.config.training.eval_batch_size,
                                replicated=replicated, halt_threshold=halt_threshold, eval_step=stage.p_eval,
                                halting=halting, settle_steps=settle_steps)

    def _run_eval(self, step: int) -> dict:
        self.block_until_ready()  # eval_time_s is the evaluation's own time, not the steps still in flight
        t = self.clock()
        res = self.evaluate()
        if res:
            res["eval_time_s"] = self.clock() - t
            self.eval_history.append(dict(step=step, stage=self.stage.spec.index, **res))
            self.run.logger.log_eval(step, self.stage.spec.index, res)
            log_results(step, res)
            self.run.callbacks.on_eval(self, step, res)
        return res

    # ---------------------------------------------------------------------------------------- train

    def train(self) -> TrainResult:
        """Run the training loop to the last step of the last curriculum stage, or until a stop request.

        Starts the run (restoring it with `resume`), then steps, logs every `training.log_every` steps,
        evaluates every `training.eval_every` steps and at the end (after a stop request only with its
        `final_eval`), and checkpoints every `training.checkpoint_every` steps and at the end.
        SIGTERM/SIGINT (in the main thread) and `request_stop` stop it after the current step, with a
        checkpoint. Ends with `close()`.

        Returns:
            The `TrainResult`: the weights to predict with, the final evaluation, the metric history.

        Raises:
            TRMError: `run_dir` holds checkpoints of another run (without `resume` or `overwrite`), the
                run directory cannot be written, or training diverged (too many consecutive non-finite
                steps: `training.max_consecutive_nonfinite`).
        """
        run, t_start, bar = self.run, time.time(), None
        try:
            with stop_on_signals(self.request_stop):
                step = run.start()
                total = run.scheduler.total_steps
                if self.config.training.progress_bar and run.is_main:
                    bar = tqdm(total=total, initial=step, desc="train", dynamic_ncols=True, mininterval=1.0)
                run.callbacks.on_train_start(self)
                try:
                    summary, stopped = self._loop(step, total, bar)
                except OSError as e:  # metrics.jsonl on a full or read-only disk (checkpoint writes: Checkpointer)
                    raise run.run_directory.unwritable(e, run.checkpointer.latest_step()) from e
                if stopped and not self._final_eval_on_stop:
                    final_eval = self.eval_history[-1] if self.eval_history else {}
                elif self.eval_history and self.eval_history[-1]["step"] == run.step:
                    final_eval = self.eval_history[-1]  # a stop right after an evaluation
                else:
                    final_eval = self._run_eval(run.step)
                run.save_checkpoint()
                run.checkpointer.wait()
            result = TrainResult(params=self.params, raw_params=dist.unreplicate(run.state.params),
                                 model=run.stage.model, config=self.config, tokenizer=self.tokenizer, step=run.step,
                                 eval=final_eval, metrics=summary, history=self.history,
                                 eval_history=self.eval_history, run_dir=self.run_dir, interrupted=stopped,
                                 wall_time_s=time.time() - t_start, stop_reason=self._stop_reason if stopped else None)
            run.callbacks.on_train_end(self, result)
        finally:
            if bar is not None:
                bar.close()
            self.close()
        return result

    def _feed(self, first_step: int, end_step: int) -> BatchFeed:
        """Batches for steps [first_step, end_step) of the current stage, from the last consumed position."""
        run = self.run
        iterator = run.stage.iterator
        iterator.load_state_dict(run.iterator_state)  # batches prepared but never consumed are read again
        # derived here, once per feed: a restore may have replaced base_key
        self._step_keys = jax.random.fold_in(jax.random.wrap_key_data(run.base_key), 1 << 20)
        return BatchFeed(iterator, first_step=first_step, end_step=end_step,
                         prepare=lambda batch: dist.put_sharded(dist.shard(batch)), step_key=self._step_key,
                         depth=self._prefetch_depth())

    def _prefetch_depth(self) -> int:
        if self.prefetch_batches is not None:
            return self.prefetch_batches
        return 0 if jax.default_backend() == "cpu" else 2

    def _step_key(self, step: int):
        """The RNG key (raw data) of optimizer step `step` (from the keys `_feed` derived)."""
        return jax.random.key_data(jax.random.fold_in(self._step_keys, step))

    def _drop_step(self, feed: BatchFeed, step: int) -> dict:
        """One step of `training.halted_samples: drop` (feed.py): the next batch once every sample of the
        current one halted, else the samples still running (compacted on one device)."""
        run = self.run
        halted = dist.unshard(run.carry.halted)  # the host sync the schedule needs
        rows = step_rows(halted, compact=run.n_local == 1)
        p_step, key = run.stage.p_step, self._step_key(step)
        if rows is None:
            item = next(feed)
            run.iterator_state = item.iterator_state
            run.state, run.carry, metrics = p_step(run.state, run.carry, item.batch, key)
        elif rows.size == halted.size:
            run.state, run.carry, metrics = p_step(run.state, run.carry, self._idle_batch(rows.size), key)
        else:
            part = take_rows(run.carry, rows)
            run.state, part, metrics = p_step(run.state, part, self._idle_batch(rows.size), key)
            run.carry = put_rows(run.carry, rows, part)
        return metrics

    def _idle_batch(self, rows: int) -> dict:
        """A batch of `rows` rows for a step that refills no slot (its values are never read)."""
        seq = self.run.stage.model.token_len
        if (rows, seq) not in self._idle_batches:
            self._idle_batches[rows, seq] = dist.put_sharded(dist.shard(dict(
                inputs=np.zeros((rows, seq), np.int32), labels=np.zeros((rows, seq), np.int32),
                puzzle_ids=np.zeros((rows,), np.int32), difficulty=np.zeros((rows,), np.float32))))
        return self._idle_batches[rows, seq]

    def _loop(self, step: int, total: int, bar) -> tuple[dict, bool]:
        """Steps from `step` to `total` or a stop request: (the last window's summary, stopped early)."""
        run = self.run
        cfg = run.config.training
        window, waiting, reading, summary, feed = [], collections.deque(), None, {}, None
        t_flush, step_flush, t_done, timed = time.time(), step, None, 0
        try:
            while step < total and not self._stop.is_set():
                if feed is None:
                    if step >= run.stage.spec.end:
                        run.transition(run.scheduler.stage_at(step))
                        waiting, t_done, timed = collections.deque(), None, 0
                        t_flush, step_flush = time.time(), step
                    feed_end = min(total, run.stage.spec.end)
                    feed = self._feed(step, feed_end)
                if cfg.halted_samples == "drop":
                    metrics = self._drop_step(feed, step)
                else:
                    item = next(feed)
                    run.state, run.carry, metrics = run.stage.p_step(run.state, run.carry, item.batch, item.key)
                    run.iterator_state = item.iterator_state
                step += 1
                run.step = step
                if step == feed_end:
                    feed.close()
                    feed = None
                window.append(metrics)
                waiting.append(metrics["loss"])
                if len(waiting) > QUEUE_DEPTH:  # bounds the queue; the wait times one step, compile steps skipped
                    jax.block_until_ready(waiting.popleft())
                    now = time.time()
                    if t_done is not None and timed >= 2:
                        run.monitor.record_step(now - t_done, step - QUEUE_DEPTH)
                    t_done, timed = now, timed + 1
                if bar is not None:
                    bar.update(1)
                if run.monitor.due(step):
                    reading = run.monitor.sample()
                if step % cfg.log_every == 0 or step == run.stage.spec.end or step == total:
                    summary = self._flush(window, step, t_flush, step_flush, bar, reading)
                    window, reading = [], None
                    t_flush, step_flush = time.time(), step
                    waiting, t_done = collections.deque(), None  # the read waited for every step: restart timing
                t_side = time.time()
                run.callbacks.on_step(self, step, metrics)
                if step % cfg.eval_every == 0 and step < total:
                    self._run_eval(step)
                if step % cfg.checkpoint_every == 0 and step < total:
                    run.save_checkpoint()
                if time.time() - t_side > 1e-3:  # side work counts neither as a slow step nor in tokens/s
                    waiting, t_done = collections.deque(), None
                    t_flush += time.time() - t_side
        finally:
            if feed is not None:
                feed.close()
        if step < total:
            if window:
                summary = self._flush(window, step, t_flush, step_flush, bar, reading)
            log.warning("stopping at step %d (%s); resume with --resume", step, self._stop_reason)
        return summary, step < total

    def _flush(self, window, step, t_flush, step_flush, bar, reading) -> dict:
        """Log the window of steps (step_flush, step]: one device->host read; too many skipped steps stop the run."""
        run = self.run
        spec, cfg = run.stage.spec, run.config.training
        host = [dist.unreplicate(m) for m in window]
        summary = summarize(host)
        summary["skipped"], bad = nonfinite_runs(host)
        tps = sum(float(m["samples"]) for m in host) * spec.seq_len / max(time.time() - t_flush, 1e-9)
        self.history.append(run.logger.log_train(step, run.epoch(step), spec.index, summary, tokens_per_sec=tps,
                                                 **(reading or {})))
        steps_log.info("step %d/%d stage %d | loss %.4f ce %.4f halt %.4f | tok acc %.4f exact %.4f | depth %.2f | "
                       "lr %.2e | %.0f tok/s", step, run.scheduler.total_steps, spec.index, summary["loss"],
                       summary["ce"], summary["halt_loss"], summary["token_accuracy"], summary["exact_accuracy"],
                       summary["recursion_depth"], summary["lr"], tps)
        if bar is not None:
            bar.set_postfix(loss=f"{summary['loss']:.3f}", acc=f"{summary['token_accuracy']:.3f}",
                            exact=f"{summary['exact_accuracy']:.3f}", refresh=False)
        if summary["skipped"]:
            log.warning("steps %d-%d: %d update(s) skipped for a non-finite loss or gradient (longest run: %d "
                        "consecutive)", step - len(host) + 1, step, summary["skipped"], bad)
        if bad >= cfg.max_consecutive_nonfinite:
            last = run.checkpointer.latest_step()
            raise TRMError(f"training diverged at step {step}: {bad} consecutive steps with a non-finite loss or "
                           f"gradient were skipped (training.max_consecutive_nonfinite={cfg.max_consecutive_nonfinite})."
                           " Lower training.learning_rate, keep training.grad_clip_norm > 0, check the data for bad "
                           "samples (token ids outside the vocabulary), then resume with --resume"
                           + (f" (last checkpoint: step {last})" if last is not None else ""))
        return summary


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT call `request_stop(signal name)`: a request to stop after the
    current step (with a checkpoint), not a crash; the previous handlers come back after it. Only the
    main thread can install handlers: elsewhere (a notebook's worker thread) the block runs without them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        log.warning("received %s: saving a checkpoint and stopping after this step", name)
        request_stop(name)

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


# ------------------------------------------------------------------------------------- from a config

def as_config(config: Union[TRMConfig, dict, str, os.PathLike, None], overrides=()) -> TRMConfig:
    """A TRMConfig from a config object, a nested dict or a YAML path (None = defaults), checked by its
    task (its own keys parsed, another task's dropped: `get_task(config).config`), so a bad key fails
    here, before a run starts."""
    if isinstance(config, TRMConfig):
        config = TRMConfig.from_dict(apply_overrides(config.to_dict(), list(overrides))) if overrides else config
    elif isinstance(config, dict):
        config = TRMConfig.from_dict(apply_overrides(dict(config), list(overrides)))
    elif config is None or isinstance(config, (str, os.PathLike)):
        config = load_config(config, overrides)
    else:
        raise ConfigError(f"config must be a TRMConfig, a dict or a YAML path, got {type(config).__name__}")
    return get_task(config).config


def create_trainer(config: Union[TRMConfig, dict, str, os.PathLike, None] = None, *, overrides=(),
                   run_dir: Optional[str] = None, resume: bool = False, **kwargs) -> Trainer:
    """A ready `Trainer` for a run config.

    Starts multi-host JAX first when `distributed.enabled` (it must precede any JAX computation).

    Args:
        config: A `TRMConfig`, a nested dict or a YAML path; None = the defaults. Its task checks it
            (its own `data` keys parsed, another task's dropped), so a bad key fails here.
        overrides: `"key.path=value"` strings applied on top (as `--set`).
        run_dir: Where the run goes; None = `config.run_dir`.
        resume: Continue the run in `run_dir` from its latest checkpoint.
        **kwargs: Further `Trainer` arguments (tokenizer, datasets_fn, train_dataset, eval_dataset,
            callbacks, overwrite, async_checkpoints).

    Returns:
        The `Trainer`; `.train()` runs it.

    Raises:
        ConfigError: `config` is of another type, or a key or value is bad (the message names the key).
    """
    cfg = as_config(config, overrides)
    dist.initialize(cfg.distributed)
    return Trainer(config=cfg, run_dir=run_dir, resume=resume, **kwargs)
