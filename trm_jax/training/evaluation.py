"""Held-out evaluation during training: a stage's eval set predicted with the given weights, summarised."""

from __future__ import annotations

import logging
from typing import Optional

from trm_jax.models import TinyRecursiveModel
from trm_jax.training.stages import num_samples
from trm_jax.training.step import evaluate_samples

log = logging.getLogger(__name__)


def held_out_metrics(model: TinyRecursiveModel, params, dataset, batch_size: int, *, replicated: bool,
                     halt_threshold: Optional[float] = None) -> dict:
    """exact_accuracy, token_accuracy, recursion_depth (mean supervision steps) and num_samples of
    `params` on `dataset` (the model's predict, every sample on this host's devices, halting at
    `halt_threshold`, default the model's); {} without data. `replicated`: `params` are already on
    every local device (the trainer's state)."""
    if dataset is None or num_samples(dataset) == 0:
        return {}
    res = evaluate_samples(model, params, dataset, batch_size, replicated=replicated, halt_threshold=halt_threshold)
    return dict(exact_accuracy=float(res["exact"].mean()),
                token_accuracy=float(res["token_correct"].sum() / max(res["token_count"].sum(), 1)),
                recursion_depth=float(res["recursion_depth"].mean()), num_samples=len(res["exact"]))


def log_results(step: int, res: dict) -> None:
    log.info("eval @ step %d: exact %.4f, token %.4f, recursion depth %.2f (%d samples, %.1fs)", step,
             res["exact_accuracy"], res["token_accuracy"], res["recursion_depth"], res["num_samples"],
             res.get("eval_time_s", 0.0))
