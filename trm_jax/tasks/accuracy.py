"""Accuracy report of trained params on an ArrayDataset: exact/token accuracy, mean recursion depth and
accuracy by difficulty (every task's default evaluation)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.training.step import evaluate_samples


def accuracy_report(params, dataset, *, batch_size: int = 64, halt_threshold: Optional[float] = None,
                    max_recursion_depth: Optional[int] = None, num_bins: int = 4) -> dict:
    """Metrics of `params` (TRMParams: model, weights, seq_len) on `dataset`.

    Returns exact_accuracy, token_accuracy, recursion_depth (mean), num_samples and `by_difficulty`: a list of
    {difficulty range, count, exact_accuracy, token_accuracy, recursion_depth} over equal-width bins.
    """
    if len(dataset) == 0:
        raise TRMError("the evaluation set is empty; pass --data or set data.num_eval > 0")
    if dataset.inputs.shape[1] != params.seq_len:
        raise TRMError(f"evaluation inputs have length {dataset.inputs.shape[1]} but the model takes {params.seq_len}")
    res = evaluate_samples(params.model, params.params, dataset, min(batch_size, 1 << (len(dataset) - 1).bit_length()),
                           halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth)
    exact, tok_correct, tok_count, depth, diff = (res[k] for k in ("exact", "token_correct", "token_count",
                                                                   "recursion_depth", "difficulty"))

    def summary(sel):
        return dict(count=int(sel.sum()), exact_accuracy=float(exact[sel].mean()),
                    token_accuracy=float(tok_correct[sel].sum() / max(tok_count[sel].sum(), 1)),
                    recursion_depth=float(depth[sel].mean()))

    out = summary(np.ones(len(exact), bool))
    out["num_samples"] = out.pop("count")
    bins = []
    lo, hi = float(diff.min()), float(diff.max())
    edges = np.linspace(lo, hi, num_bins + 1) if hi > lo else np.array([lo, hi])
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        sel = (diff >= edges[i]) & ((diff <= edges[i + 1]) if last else (diff < edges[i + 1]))
        if sel.any():
            bins.append(dict(difficulty=[round(float(edges[i]), 3), round(float(edges[i + 1]), 3)], **summary(sel)))
    out["by_difficulty"] = bins
    return out


def format_table(results: dict) -> str:
    """An accuracy report as a text table (totals, then one line per difficulty bin)."""
    lines = [f"samples {results['num_samples']}   exact {results['exact_accuracy']:.4f}   "
             f"token {results['token_accuracy']:.4f}   recursion depth {results['recursion_depth']:.2f}",
             f"{'difficulty':>16} {'count':>7} {'exact':>8} {'token':>8} {'depth':>7}"]
    for b in results["by_difficulty"]:
        lo, hi = b["difficulty"]
        lines.append(f"{f'{lo:.2f}-{hi:.2f}':>16} {b['count']:>7} {b['exact_accuracy']:>8.4f} "
                     f"{b['token_accuracy']:>8.4f} {b['recursion_depth']:>7.2f}")
    return "\n".join(lines)
