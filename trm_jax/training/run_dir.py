"""The run directory and its logs: created with train.log attached, run files written (config, tokenizer,
RAG), resume checked, and metrics.jsonl (which feeds the experiment trackers).

Layout: run_dir/{config.yaml, tokenizer/, checkpoints/, best/, metrics.jsonl, train.log, rag/, tensorboard/};
one constant per name below (the RAG store's, RAG_SUBDIR, is the rag package's; tensorboard/ the trackers').
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from typing import Any, Collection, Iterable, Mapping, Optional

import numpy as np
import yaml

from trm_jax.config import TRMConfig, load_config
from trm_jax.data.tokenizers import is_saved_tokenizer, save_tokenizer
from trm_jax.errors import TRMError
from trm_jax.rag import RAG_SUBDIR
from trm_jax.tasks import get_task
from trm_jax.training.trackers import Tracker, Trackers, make_trackers

log = logging.getLogger(__name__)

RUN_CONFIG_FILE = "config.yaml"  # the run's config, as trained (a pretrained directory has config.json)
TOKENIZER_DIR = "tokenizer"  # the saved tokenizer (run and pretrained directories)
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"  # the best evaluated checkpoint (training.keep_best), an Orbax directory of its own
METRICS_FILE = "metrics.jsonl"
STEPS_LOGGER = "trm_jax.training.steps"  # per-window lines; kept off the console under a progress bar

# config sections/keys that shape the trajectory: a resumed run must not change them
RESUME_FIXED = ("seed", "model", "data", "curriculum", "training.batch_size", "training.optimizer",
                "training.halt_exploration_prob", "training.ema_decay", "training.ema_warmup")


def unwritable_message(run_dir: str, e: OSError, last_step: Optional[int] = None) -> str:
    where = getattr(e, "filename", None) or run_dir
    tail = f"; then rerun with --resume (last complete checkpoint: step {last_step})" if last_step is not None else ""
    return (f"cannot write to the run directory {run_dir} ({where}: {e.strerror or e}); free disk space or make it "
            f"writable, or set run_dir (--run-dir) to a writable directory{tail}")


class RunDirectory:
    """`path=None`: a temporary directory that `close()` deletes (a PyPI-style `Trainer(model, data)`
    without run_dir). Creating it attaches train.log (`RunLog`) until `close()`."""

    def __init__(self, path: Optional[str], *, process_index: int, progress_bar: bool):
        self._temp = tempfile.TemporaryDirectory(prefix="trm_jax_run_") if path is None else None
        self.path = os.path.abspath(self._temp.name if path is None else path)
        self.is_main = process_index == 0
        try:
            os.makedirs(self.path, exist_ok=True)
            self._run_log = RunLog(self.path, process_index, progress_bar)
        except OSError as e:
            raise TRMError(unwritable_message(self.path, e)) from None

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def unwritable(self, e: OSError, last_step: Optional[int] = None) -> TRMError:
        return TRMError(unwritable_message(self.path, e, last_step))

    def write_run_files(self, config: TRMConfig, tokenizer: Any, retriever: Any, *, resume: bool) -> None:
        """config.yaml, the tokenizer (unless saved already) and the RAG store, on the main process; on
        resume, first check that the keys shaping the trajectory match the saved config."""
        if not self.is_main:
            return
        path = self.join(RUN_CONFIG_FILE)
        if resume and os.path.exists(path):
            self.check_resume_config(config)
        try:
            config.save(path)
            tok_dir = self.join(TOKENIZER_DIR)
            if hasattr(tokenizer, "save") and not is_saved_tokenizer(tok_dir):
                save_tokenizer(tokenizer, tok_dir)
            if retriever is not None:
                retriever.save(self.join(RAG_SUBDIR))
        except OSError as e:
            raise self.unwritable(e) from None

    def check_resume_config(self, config: TRMConfig) -> None:
        path = self.join(RUN_CONFIG_FILE)
        # the saved config as its task reads it (a run saved before tasks had their own keys holds every task's)
        old, new = get_task(load_config(path)).config.to_dict(), config.to_dict()
        with open(path) as f:
            saved_training = (yaml.safe_load(f) or {}).get("training") or {}
        if "ema_warmup" not in saved_training:  # written before the warm-up existed: a constant EMA decay
            old["training"]["ema_warmup"] = False
        if new["training"]["ema_warmup"] and not old["training"]["ema_warmup"]:
            raise TRMError(f"--resume: the run in {self.path} was trained with a constant EMA decay (its config.yaml "
                           "sets training.ema_warmup false or predates it); resume with --set training.ema_warmup=false")

        def get(d, key):
            for part in key.split("."):
                d = d[part]
            return d

        for key in RESUME_FIXED:
            if get(old, key) != get(new, key):
                raise TRMError(f"--resume: config key '{key}' differs from the run's saved config ({path}); resume "
                               "with the saved config (--config <run_dir>/config.yaml) or start a new run_dir")
        changed = [f"{s}.{k}" for s in ("training", "monitoring") for k in old[s] if old[s][k] != new[s][k]]
        if changed:
            log.warning("--resume with changed settings: %s", ", ".join(changed))

    def close(self) -> None:
        """Detach train.log; a temporary directory is deleted (idempotent)."""
        self._run_log.close()
        if self._temp is not None:
            self._temp.cleanup()


# ------------------------------------------------------------------------------------------ train.log

class RunLog:
    """train.log: INFO and up from trm_jax while the console keeps the level the user chose. Attached on
    creation, detached by `close()` (idempotent), restoring the loggers as they were.

    A forwarding handler replaces propagation, so raising the package level for the file does not
    unmute the console; with a progress bar, per-window lines go to the file only. Run logs open at the
    same time (trainers never trained or closed) share one forwarding handler: it sits on the package
    logger, where the next run log finds it, and keeps the loggers' previous settings until its last
    user closes."""

    def __init__(self, run_dir: str, process_index: int, progress_bar: bool):
        name = "train.log" if process_index == 0 else f"train.{process_index}.log"
        handler = logging.FileHandler(os.path.join(run_dir, name))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg, steps = logging.getLogger("trm_jax"), logging.getLogger(STEPS_LOGGER)
        forward = next((h for h in pkg.handlers if isinstance(h, ConsoleForward)), None)
        if forward is None:
            forward = ConsoleForward(pkg, steps, quiet_steps=progress_bar)
        forward.users += 1
        pkg.addHandler(handler)
        if progress_bar:
            steps.addHandler(handler)
        self._handler, self._forward = handler, forward

    def close(self) -> None:
        if self._handler is None:
            return
        handler, self._handler = self._handler, None
        logging.getLogger("trm_jax").removeHandler(handler)
        logging.getLogger(STEPS_LOGGER).removeHandler(handler)
        handler.close()
        self._forward.detach()


class ConsoleForward(logging.Handler):
    """Passes the package's records at or above the console's former threshold to the root logger's
    handlers (or logging's last resort), while the package logger, set to INFO for train.log, no longer
    propagates. Installed on the package logger; `detach()` by its last user restores both loggers."""

    def __init__(self, pkg: logging.Logger, steps: logging.Logger, *, quiet_steps: bool):
        super().__init__()
        self.threshold = pkg.getEffectiveLevel()
        self.users = 0
        self._loggers, self._saved = (pkg, steps), (pkg.level, pkg.propagate, steps.propagate)
        pkg.setLevel(min(pkg.getEffectiveLevel(), logging.INFO))
        pkg.propagate = False
        steps.propagate = not quiet_steps
        pkg.addHandler(self)

    def detach(self) -> None:
        """One user fewer; the last one restores the loggers (not `release`: a Handler's lock method)."""
        self.users -= 1
        if self.users == 0:
            pkg, steps = self._loggers
            pkg.level, pkg.propagate, steps.propagate = self._saved
            pkg.removeHandler(self)

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


# ------------------------------------------------------------------------------------- metrics.jsonl

def to_jsonable(obj):
    """`obj` as strict JSON values: NumPy scalars and arrays become Python numbers and lists, dict keys
    strings, tuples lists (recursively); NaN and inf become None (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class TRMTrainingLogger:
    """Appends one JSON object per line to `metrics.jsonl` and forwards each record to the experiment
    trackers (TensorBoard, W&B: see trackers.py).

    Train records: split="train", step, epoch, stage, loss, ce, halt_loss, token_accuracy,
    exact_accuracy, recursion_depth, tokens_per_sec, lr, grad_norm, timestamp (+ resource readings when
    sampled). Eval records: split="eval", step, stage, exact_accuracy, token_accuracy, recursion_depth.
    Only process 0 writes (`enabled=False` elsewhere) and has trackers. Lines are flushed immediately so
    a crash loses nothing; on resume, records past the resumed step are dropped first (`truncate_after`).

    Args:
        path: The metrics.jsonl file, appended to (its folder is created).
        enabled: Write at all; False on every process but the main one.
        trackers: Experiment trackers fed each record (`start_trackers` adds those the config turns on).
    """

    def __init__(self, path: str | os.PathLike, *, enabled: bool = True, trackers: Iterable[Tracker] = ()):
        self.path = os.fspath(path)
        self.enabled = enabled
        self._f = None
        self.trackers = Trackers(trackers if enabled else ())
        if enabled:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._f = open(self.path, "a", buffering=1)

    def start_trackers(self, config, run_dir: str) -> None:
        """Start the trackers `config.logging` turns on (main process only; one that cannot start warns).

        Args:
            config: The run's `TRMConfig`.
            run_dir: The run directory (TensorBoard writes under it).
        """
        if self.enabled:
            self.trackers.active += make_trackers(config, run_dir)

    def log(self, record: Mapping, *, split: str = "train", system_keys: Collection[str] = ()) -> dict:
        """Write one record and feed it to the trackers.

        Args:
            record: The values; a "timestamp" is added when missing.
            split: The record's "split": "train", "eval", "curriculum", ...
            system_keys: The keys of its resource-monitor readings (tagged system/<key> for trackers).

        Returns:
            The record as written (plain JSON values, non-finite floats as None).
        """
        rec = {"split": split, **{k: to_jsonable(v) for k, v in record.items()}}
        rec.setdefault("timestamp", time.time())
        if self._f is not None:
            self._f.write(json.dumps(rec) + "\n")
            self.trackers.log(rec, system_keys)
        return rec

    def log_train(self, step: int, epoch: float, stage: int, metrics: Mapping, *,
                  tokens_per_sec: Optional[float] = None, **readings) -> dict:
        """Write a training window's record.

        Args:
            step: Steps done.
            epoch: Epochs done.
            stage: The curriculum stage's index.
            metrics: The window's summary (loss, accuracies, lr, ...).
            tokens_per_sec: The window's throughput.
            **readings: The resource monitor's readings, when it sampled.

        Returns:
            The record as written.
        """
        return self.log(dict(step=int(step), epoch=float(epoch), stage=int(stage), **metrics,
                             tokens_per_sec=tokens_per_sec, **readings), system_keys=readings.keys())

    def log_curriculum(self, spec, note: str) -> dict:
        """Write a stage change's record (split "curriculum").

        Args:
            spec: The new stage's `ResolvedStage`.
            note: What changed, in words.

        Returns:
            The record as written.
        """
        return self.log(dict(step=spec.start, stage=spec.index, seq_len=spec.seq_len, batch_size=spec.batch_size,
                             dim=spec.dim, difficulty=spec.difficulty, learning_rate=spec.learning_rate, note=note),
                        split="curriculum")

    def log_eval(self, step: int, stage: int, results: Mapping) -> dict:
        """Write a held-out evaluation's record (split "eval"); returns it as written."""
        return self.log(dict(step=int(step), stage=int(stage), **results), split="eval")

    def truncate_after(self, step: int) -> None:
        """Drop the records written after the checkpoint a run resumes from.

        Args:
            step: The checkpoint's step; records with a larger step are dropped.
        """
        if not self.enabled:
            return
        self.trackers.restart(step)
        if not os.path.exists(self.path):
            return
        self._f.close()
        with open(self.path) as f:
            lines = [ln for ln in f if ln.strip()]
        keep = []
        for ln in lines:
            try:
                if json.loads(ln).get("step", 0) <= step:
                    keep.append(ln)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)
        self._f = open(self.path, "a", buffering=1)

    def close(self) -> None:
        """Close metrics.jsonl and the trackers (idempotent)."""
        self.trackers.close()
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path: str | os.PathLike, split: Optional[str] = "train") -> list[dict]:
    """Records of `metrics.jsonl` (optionally only one split)."""
    out = []
    with open(path) as f:
        for ln in f:
            if ln.strip():
                rec = json.loads(ln)
                if split is None or rec.get("split") == split:
                    out.append(rec)
    return out
