"""Held-out evaluation of trained params: exact/token accuracy, recursion depth, accuracy by difficulty.

This is every task's default evaluation; what `scripts/evaluate.py` reports for a run is its task's
`evaluate` (ARC: voting over augmentations, pass@K; `score_arc_submission` scores a Kaggle submission).
"""

from __future__ import annotations

from typing import Optional

from trm_jax.inference import TRMParams, as_trm_params
from trm_jax.tasks import get_task
from trm_jax.tasks.accuracy import accuracy_report, format_table
from trm_jax.tasks.arc.evaluation import score_arc_submission

__all__ = ["dataset_for", "evaluate", "format_table", "score_arc_submission"]


def dataset_for(p: TRMParams, path: Optional[str] = None):
    """The run's own eval split, or the samples of `path` (the task's file format: JSONL for text tasks,
    CSV for Sudoku and mazes), built exactly as training built its inputs (same tokenizer, seq_len and
    RAG context)."""
    return get_task(p.config).eval_dataset(p, path)


def evaluate(params, dataset=None, *, config=None, batch_size: int = 64, halt_threshold: Optional[float] = None,
             max_recursion_depth: Optional[int] = None, num_bins: int = 4) -> dict:
    """Metrics of `params` (TRMParams or raw dict + config) on `dataset` (default: the run's eval split).

    Returns exact_accuracy, token_accuracy, recursion_depth (mean), num_samples and `by_difficulty`: a list of
    {difficulty range, count, exact_accuracy, token_accuracy, recursion_depth} over equal-width bins.
    """
    p = as_trm_params(params, config=config)
    return accuracy_report(p, dataset_for(p) if dataset is None else dataset, batch_size=batch_size,
                           halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth, num_bins=num_bins)
