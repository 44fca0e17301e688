"""Settled halting on a trained Sudoku model, no retraining: does stopping when the answer settles keep
full depth's accuracy at a fraction of its steps, and are settled answers right?

    python -m benchmarks.settled_halting --run RUN_DIR_OR_SHIPPED_NAME [--num 500] [--depths 8,32]

For each test set (held-out generated puzzles at 25 and 30 givens, the seeds of benchmarks.sudoku_accuracy,
and the shipped Sudoku-Extreme sample) and each depth cap D, three stop rules:

  full     every puzzle runs D supervision steps (the halting head switched off: threshold above 1)
  head     the model's halting head at its own threshold, cap D
  settled  `halting="settled"` at the model's `settle_steps`, cap D

and prints exact accuracy, mean supervision steps, the share of answers marked settled and the share of
those that are valid solutions (the task's verifier: rules and givens). The checks (issue targets): settled
exact within 0.01 of full, settled mean steps <= D/2, >= 99% of settled answers valid, >= half settled.
"""

from __future__ import annotations

import argparse

import trm_jax
from benchmarks.harness import write_json
from benchmarks.sudoku_accuracy import SAMPLE, held_out
from trm_jax.evaluation import dataset_for, evaluate
from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset

RULES = {"full": dict(halting="head", halt_threshold=2.0), "head": dict(halting="head"),
         "settled": dict(halting="settled")}


def test_sets(p, num: int, givens) -> dict:
    out = {}
    for g in givens:
        puzzles, solutions = held_out(g, num)
        out[f"{g} givens"] = make_sudoku_dataset(puzzles, solutions, p.tokenizer, p.seq_len)
    out["Extreme sample"] = dataset_for(p, SAMPLE)
    return out


def checks(full: dict, settled: dict, depth: int) -> dict:
    """The targets, each True/False, from the full-depth and the settled rows."""
    return {"within_0.01_of_full": abs(settled["exact"] - full["exact"]) <= 0.01 + 1e-9,
            "at_most_half_the_steps": settled["steps"] <= depth / 2,
            "settled_valid_>=0.99": settled["settled_valid"] >= 0.99,
            "half_settled": settled["settled"] >= 0.5}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a run directory, a pretrained directory or a shipped name")
    ap.add_argument("--num", type=int, default=500, help="generated puzzles per number of givens")
    ap.add_argument("--givens", default="25,30")
    ap.add_argument("--depths", default="8,32", help="depth caps D, comma-separated")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    p = trm_jax.load(args.run)
    results = {}
    print(f"{'test set':>16} {'D':>5} {'rule':>8} {'exact':>7} {'steps':>7} {'settled':>8} {'valid':>7}  checks")
    for name, ds in test_sets(p, args.num, [int(g) for g in args.givens.split(",")]).items():
        for depth in (int(d) for d in args.depths.split(",")):
            rows = {}
            for rule, kw in RULES.items():
                r = evaluate(p, ds, batch_size=args.batch_size, max_recursion_depth=depth, **kw)
                rows[rule] = dict(exact=r["exact_accuracy"], steps=r["recursion_depth"],
                                  settled=r["settled_fraction"], settled_valid=r["settled_verified_fraction"])
            rows["checks"] = checks(rows["full"], rows["settled"], depth)
            results[f"{name} @ {depth}"] = rows
            for rule in RULES:
                r = rows[rule]
                note = "" if rule != "settled" else "  " + " ".join(
                    f"{k}={'met' if v else 'MISSED'}" for k, v in rows["checks"].items())
                print(f"{name:>16} {depth:>5} {rule:>8} {r['exact']:>7.3f} {r['steps']:>7.2f} {r['settled']:>8.3f} "
                      f"{r['settled_valid']:>7.3f}{note}")
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
