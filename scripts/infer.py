"""Answer queries with a trained run.

  python scripts/infer.py --run RUN_DIR --text "what is f(3)?" [--text ...] [--details]
  cat queries.txt | python scripts/infer.py --run RUN_DIR          (one query per line)
  python scripts/infer.py --run RUN_DIR --text QUERY --trajectories 16 [--noise-std S --select vote --seed N]
  python scripts/infer.py --run RUN_DIR --text QUERY --halting settled --max-recursion-depth 1024 --details
  python scripts/infer.py --model sudoku --text "..3.8...1..."     (a model shipped with trm_jax)

--details prints each answer as JSON with its recursion depth, halt probability, `settled` (it stopped by
the stop rule, not at the depth cap) and, for tasks with a verifier (Sudoku, maze), `verified`.
"""

import argparse
import json
import sys

from trm_jax.errors import TRMError


def main(argv=None):
    from trm_jax.inference import add_trajectory_arguments, infer, load, trajectory_options  # after the re-exec
    from trm_jax.pretrained import shipped_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory written by scripts/train.py (or a pretrained directory)")
    source.add_argument("--model", help="a model shipped with trm_jax (trm_jax.pretrained_models(): sudoku, ...)")
    ap.add_argument("--text", action="append", default=None, help="a query (repeatable); default: stdin lines")
    ap.add_argument("--step", type=int, default=None)
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--halt-threshold", type=float, default=None)
    ap.add_argument("--max-recursion-depth", type=int, default=None,
                    help="supervision steps at most (default: the run's; more than it trained with is allowed)")
    add_trajectory_arguments(ap)
    ap.add_argument("--details", action="store_true",
                    help="print JSON with depth, halt prob, settled, verified and contexts")
    args = ap.parse_args(argv)
    texts = args.text if args.text else [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
    if not texts:
        sys.exit("error: no input; pass --text or pipe queries on stdin, one per line")
    try:
        params = load(args.run if args.model is None else shipped_model(args.model), step=args.step,
                      use_ema=not args.no_ema)
        out = infer(params, texts, halt_threshold=args.halt_threshold,
                    max_recursion_depth=args.max_recursion_depth, return_details=args.details,
                    **trajectory_options(args))
    except TRMError as e:
        sys.exit(f"error: {e}")
    for text, ans in zip(texts, out):
        print(json.dumps(dict(text=text, **ans)) if args.details else ans)


if __name__ == "__main__":
    from launcher import launch

    launch(main)
