"""Evaluate a trained run: python scripts/evaluate.py --run RUN_DIR [--data FILE] [--out results.json]

Prints exact and token accuracy, mean recursion depth and accuracy by difficulty, and writes JSON
(default RUN_DIR/eval_results.json).
"""

import argparse
import json
import os
import sys

from trm_jax.errors import TRMError


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run directory written by scripts/train.py")
    ap.add_argument("--data", default=None, help="JSONL (text tasks) or Sudoku CSV; default: the run's eval split")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    ap.add_argument("--no-ema", action="store_true", help="use the raw params instead of the EMA")
    ap.add_argument("--halt-threshold", type=float, default=None)
    ap.add_argument("--max-recursion-depth", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None, help="JSON output path (default RUN_DIR/eval_results.json)")
    args = ap.parse_args(argv)
    try:
        from trm_jax.evaluation import dataset_for, evaluate, format_table
        from trm_jax.inference import load

        params = load(args.run, step=args.step, use_ema=not args.no_ema)
        results = evaluate(params, dataset_for(params, args.data), batch_size=args.batch_size,
                           halt_threshold=args.halt_threshold, max_recursion_depth=args.max_recursion_depth)
    except TRMError as e:
        sys.exit(f"error: {e}")
    results.update(run=os.path.abspath(args.run), step=params.step, data=args.data or "eval split")
    print(format_table(results))
    out = args.out or os.path.join(args.run, "eval_results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
