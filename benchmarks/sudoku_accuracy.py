"""Exact accuracy of a trained Sudoku run on held-out generated puzzles by number of givens, and on the
shipped Sudoku-Extreme sample.

    python -m benchmarks.sudoku_accuracy --run RUN_DIR [--num 500] [--givens 25,30,35,40]

The puzzles come from seeds training never uses; `--check-infer K` also solves K of the 30-given
puzzles through `trm_jax.infer` (81-character text in, 81-digit solution out) and checks that it
agrees with the batched evaluation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import trm_jax
from benchmarks.harness import write_json
from trm_jax.evaluation import dataset_for, evaluate
from trm_jax.tasks.sudoku import SAMPLE_CSV, generate_sudoku, givens_difficulty, grids_to_texts
from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset

SAMPLE = SAMPLE_CSV
HELD_OUT_SEED = 7_777  # training generates with the run's seed (0 in the configs); never this one


def held_out(givens: int, num: int):
    puzzles, solutions = generate_sudoku(num, seed=HELD_OUT_SEED + givens, difficulty=float(givens_difficulty(givens)))
    return puzzles, solutions


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--num", type=int, default=500, help="puzzles per number of givens")
    ap.add_argument("--givens", default="25,30,35,40")
    ap.add_argument("--check-infer", type=int, default=0, metavar="K")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    p = trm_jax.load(args.run)
    results = {}
    for g in (int(x) for x in args.givens.split(",")):
        puzzles, solutions = held_out(g, args.num)
        r = evaluate(p, make_sudoku_dataset(puzzles, solutions, p.tokenizer, p.seq_len), batch_size=256)
        results[f"{g} givens"] = dict(exact=r["exact_accuracy"], cell=r["token_accuracy"],
                                      depth=r["recursion_depth"], mean_givens=float((puzzles > 0).sum(1).mean()))
        if g == 30 and args.check_infer:
            k = args.check_infer
            t0 = time.perf_counter()
            answers = trm_jax.infer(p, grids_to_texts(puzzles[:k]))
            infer_exact = float(np.mean([a == s for a, s in zip(answers, grids_to_texts(solutions[:k]))]))
            results[f"{g} givens"].update(infer_exact_first_k=infer_exact, infer_k=k,
                                          infer_s=time.perf_counter() - t0)
    r = evaluate(p, dataset_for(p, SAMPLE), batch_size=256)
    results["Sudoku-Extreme sample (100)"] = dict(exact=r["exact_accuracy"], cell=r["token_accuracy"],
                                                  depth=r["recursion_depth"])
    print(f"{'held-out set':>28} {'exact':>7} {'cell':>7} {'depth':>6}")
    for name, r in results.items():
        print(f"{name:>28} {r['exact']:>7.3f} {r['cell']:>7.3f} {r['depth']:>6.2f}"
              + (f"   infer on {r['infer_k']}: exact {r['infer_exact_first_k']:.3f}" if "infer_k" in r else ""))
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
