"""Training metrics: window summaries of step sums and the `metrics.jsonl` logger (which feeds the trackers)."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Collection, Iterable, Mapping, Optional

import numpy as np

from trm_jax.training.trackers import Tracker, Trackers, make_trackers


def summarize(window: Iterable[Mapping[str, np.ndarray]]) -> dict:
    """Averages over a window of per-step metric sums (see step.SUM_KEYS).

    Loss parts and exact accuracy are per-sample means over every slot-step in the window; token
    accuracy is over tokens; recursion_depth is the mean step count of the samples that halted.
    """
    window = list(window)
    if not window:
        return {}
    tot = {k: float(np.sum([np.asarray(m[k], np.float64) for m in window])) for k in window[0]}
    n = max(tot["samples"], 1.0)
    halted = tot["halted"]
    out = dict(
        loss=tot["loss"] / n, ce=tot["ce"] / n, halt_loss=tot["halt_loss"] / n,
        token_accuracy=tot["token_correct"] / max(tot["token_count"], 1.0),
        exact_accuracy=tot["exact"] / n,
        recursion_depth=tot["recursion_depth"] / halted if halted else float("nan"),
        halted_fraction=halted / n,
        samples_per_step=tot["samples"] / len(window),  # the batch; smaller with training.halted_samples=drop
        difficulty=tot["difficulty"] / n,
        lr=float(np.asarray(window[-1]["lr"])),
        grad_norm=float(np.mean([np.asarray(m["grad_norm"], np.float64) for m in window])),
        nonfinite=int(np.asarray(window[-1]["nonfinite"])),
    )
    return out


def nonfinite_runs(window: Iterable[Mapping[str, np.ndarray]]) -> tuple[int, int]:
    """(updates skipped in the window, the longest run of consecutive skipped updates seen in it), from
    each step's `nonfinite` counter: a run of bad steps followed by a good one inside one window counts."""
    counts = [int(np.asarray(m["nonfinite"])) for m in window]
    return sum(c > 0 for c in counts), max(counts, default=0)


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
        """Start the trackers `config.logging` turns on (main process only; one that cannot start warns)."""
        if self.enabled:
            self.trackers.active += make_trackers(config, run_dir)

    def log(self, record: Mapping, *, split: str = "train", system_keys: Collection[str] = ()) -> dict:
        """Write one record; `system_keys` name its resource-monitor readings (tagged system/<key>)."""
        rec = {"split": split, **{k: to_jsonable(v) for k, v in record.items()}}
        rec.setdefault("timestamp", time.time())
        if self._f is not None:
            self._f.write(json.dumps(rec) + "\n")
            self.trackers.log(rec, system_keys)
        return rec

    def log_train(self, step: int, epoch: float, stage: int, metrics: Mapping, *,
                  tokens_per_sec: Optional[float] = None, **readings) -> dict:
        """A training window's record; `readings` are the resource monitor's, when it sampled."""
        return self.log(dict(step=int(step), epoch=float(epoch), stage=int(stage), **metrics,
                             tokens_per_sec=tokens_per_sec, **readings), system_keys=readings.keys())

    def log_curriculum(self, spec, note: str) -> dict:
        """A stage change (`spec`: the new stage's ResolvedStage)."""
        return self.log(dict(step=spec.start, stage=spec.index, seq_len=spec.seq_len, batch_size=spec.batch_size,
                             dim=spec.dim, difficulty=spec.difficulty, learning_rate=spec.learning_rate, note=note),
                        split="curriculum")

    def log_eval(self, step: int, stage: int, results: Mapping) -> dict:
        return self.log(dict(step=int(step), stage=int(stage), **results), split="eval")

    def truncate_after(self, step: int) -> None:
        """Drop records with step > `step` (written after the checkpoint a run resumes from)."""
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
