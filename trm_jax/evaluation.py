"""Held-out evaluation of trained params: exact/token accuracy, recursion depth, accuracy by difficulty."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from trm_jax.arc_evaluation import score_arc_submission  # noqa: F401  (ARC scoring lives beside its voting)
from trm_jax.errors import TRMError
from trm_jax.inference import TRMParams, as_trm_params


def dataset_for(p: TRMParams, path: Optional[str] = None):
    """The run's own eval split, or the samples of `path` (JSONL for text tasks, CSV for Sudoku),
    built exactly as training built its inputs (same tokenizer, seq_len and RAG context)."""
    from trm_jax import data

    cfg = p.config
    transform = None
    if p.retriever is not None and cfg.data.task != "sudoku":
        from trm_jax.rag import RAGDatasetWrapper
        transform = RAGDatasetWrapper.from_config(p.retriever, cfg)
    if path is None:
        _, eval_set = data.build_datasets(cfg, p.tokenizer, seq_len=p.seq_len, samples_transform=transform)
        return eval_set
    if not os.path.isfile(path):
        raise TRMError(f"evaluation data not found: {path}")
    if cfg.data.task == "maze":
        from trm_jax.data.maze import read_maze_csv
        from trm_jax.data.datasets import make_maze_dataset
        mazes = read_maze_csv(path)
        return make_maze_dataset(mazes.questions, mazes.answers, p.seq_len, size=mazes.size)
    if cfg.data.task == "sudoku":
        csv = data.read_sudoku_csv(path)
        from trm_jax.data.sudoku import rating_difficulty
        return data.make_sudoku_dataset(csv.puzzles, csv.solutions, p.tokenizer, p.seq_len,
                                        rating_difficulty(csv.ratings))
    samples = data.read_jsonl(path)
    if transform is not None:
        samples = transform(samples)
    return data.make_text_dataset(samples, p.tokenizer, p.seq_len, cfg.data.truncation)


def evaluate(params, dataset=None, *, config=None, batch_size: int = 64, halt_threshold: Optional[float] = None,
             max_recursion_depth: Optional[int] = None, num_bins: int = 4) -> dict:
    """Metrics of `params` (TRMParams or raw dict + config) on `dataset` (default: the run's eval split).

    Returns exact_accuracy, token_accuracy, recursion_depth (mean), num_samples and `by_difficulty`: a list of
    {difficulty range, count, exact_accuracy, token_accuracy, recursion_depth} over equal-width bins.
    """
    p = as_trm_params(params, config=config)
    ds = dataset_for(p) if dataset is None else dataset
    if len(ds) == 0:
        raise TRMError("the evaluation set is empty; pass --data or set data.num_eval > 0")
    if ds.inputs.shape[1] != p.seq_len:
        raise TRMError(f"evaluation inputs have length {ds.inputs.shape[1]} but the model takes {p.seq_len}")
    from trm_jax.training.step import evaluate_samples

    res = evaluate_samples(p.model, p.params, ds, min(batch_size, 1 << (len(ds) - 1).bit_length()),
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
    lines = [f"samples {results['num_samples']}   exact {results['exact_accuracy']:.4f}   "
             f"token {results['token_accuracy']:.4f}   recursion depth {results['recursion_depth']:.2f}",
             f"{'difficulty':>16} {'count':>7} {'exact':>8} {'token':>8} {'depth':>7}"]
    for b in results["by_difficulty"]:
        lo, hi = b["difficulty"]
        lines.append(f"{f'{lo:.2f}-{hi:.2f}':>16} {b['count']:>7} {b['exact_accuracy']:>8.4f} "
                     f"{b['token_accuracy']:>8.4f} {b['recursion_depth']:>7.2f}")
    return "\n".join(lines)
