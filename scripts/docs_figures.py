"""The docs' pictures, drawn from measured results (never by hand): metric plots of trained runs, a trace of
the recursion, and accuracy against depth and against trajectories. Writes PNGs/GIFs and figures.json (every
number a picture shows, with how it was measured) into --out.

  python scripts/docs_figures.py --run default=runs/default --run sudoku=runs/sudoku_cpu \\
      --model sudoku --out docs/images

--run NAME=DIR       a run's metric overview -> NAME_metrics.png (plot_metrics' 2x2 overview)
--model NAME         a model (shipped name, run or pretrained directory) whose task has held-out samples:
                     NAME_trace.gif/.png (one held-out query: the first, or with --trace-longest the one
                     taking the most steps among the first 16), NAME_accuracy_vs_depth.png (exact accuracy
                     at each --depths cap, halting by the head and by settling) and
                     NAME_accuracy_vs_trajectories.png (--trajectories K, each selection rule)
"""

import argparse
import json
import os
import shutil
import sys
import time

DEPTHS = "1,2,4,8,16,32"
TRAJECTORIES = "1,2,4,8"


def _ints(text: str, flag: str) -> list:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        sys.exit(f"error: {flag}: comma-separated positive integers, got {text!r}")
    return values


def exact_accuracy(params, queries, answers, **options) -> float:
    import numpy as np

    from trm_jax.inference import infer

    return float(np.mean([a == b for a, b in zip(infer(params, queries, **options), answers)]))


def line_plot(path: str, title: str, xlabel: str, xs: list, series: dict, log2: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set(title=title, xlabel=xlabel, ylabel="exact accuracy", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def model_figures(name: str, out: str, num_samples: int, seed: int, depths: list, trajectories: list,
                  trace_longest: bool = False) -> dict:
    from trm_jax.errors import TRMError
    from trm_jax.inference import load
    from trm_jax.plotting import plot_trace
    from trm_jax.pretrained import held_out_samples
    from trm_jax.tracing import trace

    params = load(name)
    queries, answers = held_out_samples(params.config, num_samples, seed)
    label = os.path.basename(os.path.normpath(name))
    record = {"model": name, "num_samples": len(queries), "seed": seed,
              "samples": f"held_out_samples(config, {num_samples}, {seed}): newly generated held-out samples"}

    # the trace of the first query, or with --trace-longest the first query taking the most steps among the
    # first 16 (a model that solves most queries in one step otherwise draws a one-frame trace)
    candidates = queries[:16] if trace_longest else queries[:1]
    traces = [trace(params, q) for q in candidates]
    index = max(range(len(traces)), key=lambda i: (len(traces[i].answers), -i))
    t = traces[index]
    record["trace"] = {"query_index": index, "steps": len(t.answers), "stopped_by": t.stopped_by,
                       "files": [plot_trace(t, os.path.join(out, f"{label}_trace.{ext}")) for ext in ("gif", "png")]}

    by_depth = {}
    for halting in ("head", "settled"):
        by_depth[halting] = [exact_accuracy(params, queries, answers, max_recursion_depth=d, halting=halting)
                             for d in depths]
        print(f"{label}: halting {halting}: " + ", ".join(f"depth {d}: {a:.3f}" for d, a in zip(depths, by_depth[halting])))
    record["depth"] = {"depths": depths, "exact_accuracy": by_depth, "file": line_plot(
        os.path.join(out, f"{label}_accuracy_vs_depth.png"), f"{label}: accuracy against the depth cap",
        "max recursion depth (supervision steps)", depths,
        {f"halting: {h}": v for h, v in by_depth.items()}, log2=True)}

    by_select = {}
    for select in ("halt", "vote", "verify"):
        try:
            by_select[select] = [exact_accuracy(params, queries, answers, trajectories=k, select=select, seed=0)
                                 for k in trajectories]
        except TRMError as e:  # a task without a verifier refuses "verify"; the others still plot
            print(f"{label}: select={select} skipped: {e}")
            continue
        print(f"{label}: select {select}: " + ", ".join(f"K={k}: {a:.3f}" for k, a in zip(trajectories, by_select[select])))
    record["trajectories"] = {"trajectories": trajectories, "exact_accuracy": by_select, "file": line_plot(
        os.path.join(out, f"{label}_accuracy_vs_trajectories.png"), f"{label}: accuracy against trajectories",
        "trajectories per query (K)", trajectories, {f"select: {s}": v for s, v in by_select.items()}, log2=True)}
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="a run's metric plots")
    ap.add_argument("--model", action="append", default=[], help="a model's trace and accuracy plots")
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2000, help="config seed of the held-out samples")
    ap.add_argument("--trace-longest", action="store_true",
                    help="trace the query taking the most steps among the first 16 held-out ones (default: the first)")
    ap.add_argument("--depths", default=DEPTHS)
    ap.add_argument("--trajectories", default=TRAJECTORIES)
    args = ap.parse_args(argv)
    depths, trajectories = _ints(args.depths, "--depths"), _ints(args.trajectories, "--trajectories")
    runs = []
    for item in args.run:
        name, sep, run_dir = item.partition("=")
        if not sep or not name.isidentifier() or not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
            sys.exit(f"error: --run {item!r}: expected NAME=DIR with DIR a run directory holding metrics.jsonl")
        runs.append((name, run_dir))
    from trm_jax.plotting import plot_metrics

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "figures.json")
    figures = json.load(open(path)) if os.path.isfile(path) else {}  # other figures measured earlier stay
    for name, run_dir in runs:
        overview = [p for p in plot_metrics(run_dir) if p.endswith("overview.png")][0]
        figures[f"{name}_metrics"] = {"run": run_dir, "file": shutil.copy(overview, os.path.join(args.out, f"{name}_metrics.png"))}
    for name in args.model:
        start = time.perf_counter()
        record = model_figures(name, args.out, args.num_samples, args.seed, depths, trajectories, args.trace_longest)
        record["wall_s"] = round(time.perf_counter() - start, 1)
        figures[os.path.basename(os.path.normpath(name))] = record
    with open(path, "w") as f:
        json.dump(figures, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    from launcher import launch

    launch(main)
