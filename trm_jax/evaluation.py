"""Held-out evaluation of trained params: exact/token accuracy, recursion depth, accuracy by difficulty
(every task's default; the one summary of trm_jax.training.evaluation), and `evaluate_run`, what
`scripts/evaluate.py` reports: the run's task's own evaluation where it has one (ARC: voting over
augmentations, pass@K, Kaggle submission, in trm_jax.tasks.arc), else that."""

from __future__ import annotations

from typing import Optional

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.inference import TRMParams, as_trm_params, with_halting
from trm_jax.models import NO_EARLY_HALT
from trm_jax.models.predict import power_of_two_at_least
from trm_jax.tasks import get_task
from trm_jax.training.evaluation import evaluate_samples, sample_summary

__all__ = ["accuracy_report", "dataset_for", "evaluate", "evaluate_run", "format_results", "format_table"]


def dataset_for(p: TRMParams, path: Optional[str] = None):
    """The run's own eval split, or the samples of `path` (the task's file format: JSONL for text tasks,
    CSV for Sudoku and mazes), built exactly as training built its inputs (same tokenizer, seq_len and
    RAG context)."""
    return get_task(p.config).eval_dataset(p, path)


def evaluate(params, dataset=None, *, config=None, batch_size: int = 64, halt_threshold: Optional[float] = None,
             max_recursion_depth: Optional[int] = None, num_bins: int = 4, trajectories: int = 1,
             noise_std: Optional[float] = None, select: str = "halt", seed: int = 0, halting: Optional[str] = None,
             settle_steps: Optional[int] = None) -> dict:
    """Held-out metrics of trained params on a dataset.

    Args:
        params: What `trm_jax.load` returns, or a raw params dict with `config=`.
        dataset: An ArrayDataset built as training built its inputs; None = the run's eval split.
        config: With raw params: the `TRMConfig` they were trained with.
        batch_size: Samples per predict call.
        halt_threshold: With `halting="head"`, a sample stops when its halting probability reaches this;
            None = the model's.
        max_recursion_depth: Supervision steps at most; None = the model's.
        num_bins: Equal-width difficulty bins of `by_difficulty`.
        trajectories: K, noisy trajectories per sample (as `trm_jax.models.predict`).
        noise_std: Their noise scale (as `trm_jax.models.predict`).
        select: How a sample's answer is picked among its trajectories (as `trm_jax.models.predict`).
        seed: Keys the noise: sample i's by `fold_in(key(seed), i)`.
        halting: The stop rule, "head" or "settled"; None = the run's `model.halting`.
        settle_steps: For `halting="settled"`; None = the run's `model.settle_steps`.

    Returns:
        A dict: exact_accuracy, token_accuracy, recursion_depth (mean supervision steps), settled_fraction
        (the share of answers whose trajectory stopped by the stop rule rather than at the depth cap),
        settled_exact_accuracy (exact accuracy of those; NaN when none settled), where the task has a
        verifier verified_fraction and settled_verified_fraction (answers the verifier accepts, of all and
        of the settled ones), num_samples, and `by_difficulty`: a list of {difficulty range, count, and
        the same metrics} over equal-width bins.

    Raises:
        TRMError: A bad option (e.g. an unknown `halting`, `select="verify"` for a task without a verifier),
            an empty dataset, or inputs of another length than the model's.
    """
    p = with_halting(as_trm_params(params, config=config), halting, settle_steps)
    return accuracy_report(p, dataset_for(p) if dataset is None else dataset, batch_size=batch_size,
                           halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth, num_bins=num_bins,
                           trajectories=trajectories, noise_std=noise_std, select=select, seed=seed)


def evaluate_run(params: TRMParams, *, data: Optional[str] = None, batch_size: int = 64,
                 halt_threshold: Optional[float] = None, max_recursion_depth: Optional[int] = None,
                 trajectories: int = 1, noise_std: Optional[float] = None, select: str = "halt",
                 seed: int = 0, halting: Optional[str] = None, settle_steps: Optional[int] = None) -> dict:
    """What `scripts/evaluate.py` reports for a run on `data` (default: its eval split): its task's own
    evaluation, else the accuracy report, and for official-variant runs without a halt threshold also
    every supervision step run for every sample (key "all_steps", as the published numbers were).
    `trajectories`, `noise_std`, `select`, `seed`, `halting` and `settle_steps`: see `evaluate`."""
    params = with_halting(params, halting, settle_steps)
    task = get_task(params.config)
    task.select_verifier(params.tokenizer, select)  # verify on a task without a verifier: one clear error
    trajectory_options = dict(trajectories=trajectories, noise_std=noise_std, select=select, seed=seed)
    own = task.evaluate(params, data=data, batch_size=batch_size, halt_threshold=halt_threshold,
                                           max_recursion_depth=max_recursion_depth, **trajectory_options)
    if own is not None:
        return own
    dataset = dataset_for(params, data)
    results = accuracy_report(params, dataset, batch_size=batch_size, halt_threshold=halt_threshold,
                              max_recursion_depth=max_recursion_depth, **trajectory_options)
    if params.model.variant == "official" and halt_threshold is None:
        depth = max_recursion_depth or params.model.max_recursion_depth
        # every step for every sample: the halting head with a threshold it never reaches, whatever the run's rule
        results["all_steps"] = dict(accuracy_report(with_halting(params, "head"), dataset, batch_size=batch_size,
                                                    halt_threshold=NO_EARLY_HALT, max_recursion_depth=depth,
                                                    **trajectory_options),
                                    max_recursion_depth=depth)
    return results


def accuracy_report(params: TRMParams, dataset, *, batch_size: int = 64, halt_threshold: Optional[float] = None,
                    max_recursion_depth: Optional[int] = None, num_bins: int = 4, trajectories: int = 1,
                    noise_std: Optional[float] = None, select: str = "halt", seed: int = 0) -> dict:
    """`evaluate`'s metrics of TRMParams on an ArrayDataset."""
    if len(dataset) == 0:
        raise TRMError("the evaluation set is empty; pass --data or set data.num_eval > 0")
    if dataset.inputs.shape[1] != params.seq_len:
        raise TRMError(f"evaluation inputs have length {dataset.inputs.shape[1]} but the model takes {params.seq_len}")
    # the verifier reports which answers pass (and chooses with select="verify"), where the task has one
    verifier = get_task(params.config).select_verifier(params.tokenizer, select, details=True)
    res = evaluate_samples(params.model, params.params, dataset, min(batch_size, power_of_two_at_least(len(dataset))),
                           halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth,
                           trajectories=trajectories, noise_std=noise_std, select=select, seed=seed,
                           verifier=verifier)
    diff = res["difficulty"]
    out = dict(sample_summary(res), num_samples=len(diff))
    bins = []
    lo, hi = float(diff.min()), float(diff.max())
    edges = np.linspace(lo, hi, num_bins + 1) if hi > lo else np.array([lo, hi])
    for i in range(len(edges) - 1):
        last = i == len(edges) - 2
        sel = (diff >= edges[i]) & ((diff <= edges[i + 1]) if last else (diff < edges[i + 1]))
        if sel.any():
            bins.append(dict(difficulty=[round(float(edges[i]), 3), round(float(edges[i + 1]), 3)],
                             count=int(sel.sum()), **sample_summary(res, sel)))
    out["by_difficulty"] = bins
    return out


def format_table(results: dict) -> str:
    """An accuracy report as text: totals, the settled (and verified) shares, then one line per difficulty bin."""
    lines = [f"samples {results['num_samples']}   exact {results['exact_accuracy']:.4f}   "
             f"token {results['token_accuracy']:.4f}   recursion depth {results['recursion_depth']:.2f}"]
    if "settled_fraction" in results:
        line = (f"settled {results['settled_fraction']:.4f} (exact {results['settled_exact_accuracy']:.4f} of "
                "them)")
        if "verified_fraction" in results:
            line += (f"   verified {results['verified_fraction']:.4f} ({results['settled_verified_fraction']:.4f} "
                     "of the settled)")
        lines.append(line)
    lines.append(f"{'difficulty':>16} {'count':>7} {'exact':>8} {'token':>8} {'depth':>7} {'settled':>8}")
    for b in results["by_difficulty"]:
        lo, hi = b["difficulty"]
        lines.append(f"{f'{lo:.2f}-{hi:.2f}':>16} {b['count']:>7} {b['exact_accuracy']:>8.4f} "
                     f"{b['token_accuracy']:>8.4f} {b['recursion_depth']:>7.2f} "
                     f"{b.get('settled_fraction', float('nan')):>8.4f}")
    return "\n".join(lines)


def format_results(results: dict) -> str:
    """`evaluate_run`'s results as text: an accuracy report as a table (and its all-steps twin), a task's
    own numbers one per line."""
    if "by_difficulty" not in results:
        return "\n".join(f"{k:>10} {v:.4f}" for k, v in results.items() if isinstance(v, float))
    text = format_table(results)
    if "all_steps" in results:
        steps = results["all_steps"]
        text += f"\nall {steps['max_recursion_depth']} steps (official evaluation):\n{format_table(steps)}"
    return text
