"""PNG plots of a run's `metrics.jsonl` (headless matplotlib)."""

from __future__ import annotations

import os
from typing import Optional

from trm_jax.errors import TRMError
from trm_jax.training.run_dir import METRICS_FILE, read_metrics

PANELS = {
    "loss": [("train", "loss"), ("train", "ce"), ("train", "halt_loss")],
    "accuracy": [("train", "token_accuracy"), ("train", "exact_accuracy"),
                 ("eval", "token_accuracy"), ("eval", "exact_accuracy")],
    "recursion_depth": [("train", "recursion_depth"), ("eval", "recursion_depth")],
    "throughput": [("train", "tokens_per_sec")],
}


def _series(records, split, key):
    pts = [(r["step"], r[key]) for r in records
           if r.get("split") == split and isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_metrics(run_dir: str, out_dir: Optional[str] = None) -> list[str]:
    """Write loss/accuracy/recursion-depth/throughput PNGs (and a 2x2 overview); returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise TRMError(f"no {METRICS_FILE} in {run_dir}; pass the run directory written by scripts/train.py")
    records = read_metrics(path, split=None)
    if not any(r.get("split") == "train" for r in records):
        raise TRMError(f"{path} has no training records yet; plot after at least one log interval")
    out_dir = out_dir or os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)

    def draw(ax, name):
        for split, key in PANELS[name]:
            xs, ys = _series(records, split, key)
            if xs:
                ax.plot(xs, ys, marker="o" if split == "eval" else None, markersize=3, label=f"{split} {key}")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)

    paths = []
    for name in PANELS:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax, name)
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"{name}.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, name in zip(axes.flat, PANELS):
        draw(ax, name)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "overview.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
