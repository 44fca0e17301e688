"""Evaluate a trained run: python scripts/evaluate.py --run RUN_DIR [--data FILE] [--out results.json]

Prints exact and token accuracy, mean recursion depth and accuracy by difficulty, and writes JSON
(default RUN_DIR/eval_results.json). Official-variant runs are also evaluated as the official code
does, every supervision step for every sample (JSON key "all_steps"), unless --halt-threshold is given.
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
    ap.add_argument("--submission", default=None,
                    help="ARC runs: write the Kaggle submission JSON here (two attempts per test input)")
    args = ap.parse_args(argv)
    try:
        from trm_jax.inference import load

        params = load(args.run, step=args.step, use_ema=not args.no_ema)
        if params.config.data.task == "arc":
            return _evaluate_arc(params, args)
    except TRMError as e:
        sys.exit(f"error: {e}")
    try:
        from trm_jax.evaluation import dataset_for, evaluate, format_table
        from trm_jax.models import NO_EARLY_HALT

        dataset = dataset_for(params, args.data)
        results = evaluate(params, dataset, batch_size=args.batch_size, halt_threshold=args.halt_threshold,
                           max_recursion_depth=args.max_recursion_depth)
        print(format_table(results))
        if params.model.variant == "official" and args.halt_threshold is None:
            # the published numbers ran every supervision step for every sample: report that too
            depth = args.max_recursion_depth or params.model.max_recursion_depth
            all_steps = evaluate(params, dataset, batch_size=args.batch_size, halt_threshold=NO_EARLY_HALT,
                                 max_recursion_depth=depth)
            print(f"all {depth} steps (official evaluation):")
            print(format_table(all_steps))
            results["all_steps"] = all_steps
    except TRMError as e:
        sys.exit(f"error: {e}")
    results.update(run=os.path.abspath(args.run), step=params.step, data=args.data or "eval split")
    out = args.out or os.path.join(args.run, "eval_results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")


def _evaluate_arc(params, args):
    """Voting evaluation over the augmented test inputs of the run's own ARC build (its puzzle
    identifiers are the rows of the trained table), pass@K table and optional Kaggle submission."""
    from trm_jax.arc_evaluation import evaluate_arc_build, model_predict_fn, write_submission
    from trm_jax.data.arc import build_arc_for
    from trm_jax.data.arc.build import parse_source
    from trm_jax.models import NO_EARLY_HALT

    data = params.config.data
    if args.data is not None:
        source, split = parse_source(args.data, "evaluation")
        if (source, split) != (data.arc_source, "evaluation"):
            raise TRMError(f"--data {args.data}: this run was trained transductively on {data.arc_source}:evaluation "
                           "(its puzzle embeddings are those tasks' augmentations); evaluate that set, or train a "
                           "run on the other one")
    build = build_arc_for(params.config)
    threshold = NO_EARLY_HALT if args.halt_threshold is None else args.halt_threshold
    result = evaluate_arc_build(model_predict_fn(params.model, params.params, threshold, args.max_recursion_depth),
                                build, pass_ks=data.arc_pass_ks, batch_size=args.batch_size)
    for k, v in result.metrics.items():
        print(f"{k:>10} {v:.4f}")
    if args.submission:
        print(f"wrote {write_submission(result.submission, args.submission)}")
    out = args.out or os.path.join(args.run, "eval_results.json")
    with open(out, "w") as f:
        json.dump(dict(result.metrics, run=os.path.abspath(args.run), step=params.step), f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
