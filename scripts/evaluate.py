"""Evaluate a trained run: python scripts/evaluate.py --run RUN_DIR [--data FILE] [--out results.json]

Reports what the run's task evaluates and writes it as JSON (default RUN_DIR/eval_results.json). Most
tasks: exact and token accuracy, mean recursion depth and accuracy by difficulty; official-variant runs
are also evaluated as the official code does, every supervision step for every sample (JSON key
"all_steps"), unless --halt-threshold is given. ARC runs: pass@K of the voting over augmentations, and
with --submission the Kaggle submission file. --trajectories K answers each sample with K noisy
trajectories (--noise-std, --select, --seed; ARC: their answers join the augmentation vote);
--halting settled stops a sample once its answer has not changed for --settle-steps steps, and the report
gives the share of settled answers and their accuracy (and, for Sudoku and maze, the share the task's
verifier accepts). With
--adapt-steps N the run is first adapted to puzzles it never trained on (ARC: --tasks, e.g. a Kaggle
*_challenges.json), which are then evaluated: one command from a trained run and a challenges file to
submission.json.
"""

import argparse
import json
import os
import sys

from trm_jax.errors import TRMError


def main(argv=None):
    from trm_jax.inference import add_trajectory_arguments, load, trajectory_options  # after the launcher's re-exec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run directory written by scripts/train.py, a save_pretrained "
                    "directory or hf://user/repo")
    ap.add_argument("--data", default=None, help="a file in the run's task format (JSONL for text tasks, Sudoku or "
                    "maze CSV; ARC: SOURCE:evaluation); default: the run's eval split")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    ap.add_argument("--which", choices=("latest", "best"), default="latest",
                    help="the newest checkpoint, or the best evaluated one (run_dir/best, training.keep_best)")
    ap.add_argument("--no-ema", action="store_true", help="use the raw params instead of the EMA")
    ap.add_argument("--halt-threshold", type=float, default=None)
    ap.add_argument("--max-recursion-depth", type=int, default=None,
                    help="supervision steps at most (default: the run's; more than it trained with is allowed)")
    add_trajectory_arguments(ap)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None, help="JSON output path (default RUN_DIR/eval_results.json; for --run hf://... ./eval_results.json)")
    ap.add_argument("--submission", default=None,
                    help="ARC runs: write the Kaggle submission JSON here (two attempts per test input)")
    ap.add_argument("--adapt-steps", type=int, default=None, metavar="N",
                    help="first adapt the run to puzzles it never trained on (N steps; scripts/adapt.py), then "
                    "evaluate those: ARC, the tasks of --tasks")
    ap.add_argument("--tasks", default=None, help="with --adapt-steps: the puzzles (ARC: SOURCE[:evaluation], a "
                    "*_challenges.json file or a folder of task JSONs; default: the run's evaluation set)")
    ap.add_argument("--num-aug", type=int, default=None, help="with --adapt-steps, ARC: augmentations per task")
    args = ap.parse_args(argv)
    try:
        from trm_jax.evaluation import evaluate_run, format_results

        if args.adapt_steps is None and (args.tasks is not None or args.num_aug is not None):
            raise TRMError("--tasks and --num-aug say what to adapt to: pass --adapt-steps N as well")
        params = load(args.run, step=args.step, use_ema=not args.no_ema, which=args.which)
        if args.adapt_steps is not None:
            from trm_jax.adaptation import adapt

            params = adapt(params, args.tasks, steps=args.adapt_steps,
                           **({} if args.num_aug is None else {"num_aug": args.num_aug}))
        results = evaluate_run(params, data=args.data, batch_size=args.batch_size,
                               halt_threshold=args.halt_threshold, max_recursion_depth=args.max_recursion_depth,
                               **trajectory_options(args))
        submission = results.pop("submission", None)
        if args.submission and submission is None:
            raise TRMError(f"--submission: the {params.config.data.task!r} task writes no submission file")
    except TRMError as e:
        sys.exit(f"error: {e}")
    print(format_results(results))
    if args.submission:
        from trm_jax.tasks.arc.evaluation import write_submission  # only submissions need it
        print(f"wrote {write_submission(submission, args.submission)}")
    remote = args.run.startswith("hf://")  # a Hub repository: nothing to write beside it
    results.update(run=args.run if remote else os.path.abspath(args.run), step=params.step, checkpoint=args.which,
                   data=args.data or "eval split")
    if args.adapt_steps is not None:
        results.update(adapt_steps=args.adapt_steps, data=args.tasks or "the run's evaluation set, adapted")
    # adapted results go beside the run's own: eval_results.json is the run's (its model card reads it)
    name = "eval_results.json" if args.adapt_steps is None else "adapted_eval_results.json"
    out = args.out or (name if remote else os.path.join(args.run, name))
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    from launcher import launch

    launch(main)
