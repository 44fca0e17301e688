"""Draw the recursion of one query step by step: a PNG strip of every supervision step, or an animated GIF.

  python scripts/visualize.py --run RUN_DIR --text "kav(4)" --out trace.gif
  python scripts/visualize.py --model sudoku --puzzle-file puzzle.txt --out trace.png [--solution-file S]
  python scripts/visualize.py --run runs/arc --puzzle-file task.json --test-index 1 --out arc.gif

--puzzle-file: a Sudoku (81 cells, any layout infer parses), a maze (its rows, one per line) or an ARC task JSON;
its lines are joined. Options as scripts/infer.py (the trace's last answer is infer's answer).
"""

import argparse
import sys

from trm_jax.errors import TRMError


def read_query(path: str) -> str:
    """A query from a file: its lines joined (a maze's rows become the row-major grid infer takes)."""
    try:
        with open(path, encoding="utf-8") as f:
            return "".join(f.read().splitlines())
    except OSError as e:
        raise TRMError(f"--puzzle-file {path}: {e.strerror}") from None


def main(argv=None):
    from trm_jax.inference import add_trajectory_arguments, load  # after the re-exec
    from trm_jax.plotting import plot_trace, trace_format
    from trm_jax.pretrained import shipped_model
    from trm_jax.tracing import trace

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory written by scripts/train.py (or a pretrained directory)")
    source.add_argument("--model", help="a model shipped with trm_jax (trm_jax.pretrained_models(): sudoku, ...)")
    query = ap.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="the query, as scripts/infer.py takes it")
    query.add_argument("--puzzle-file", help="a file holding the query (Sudoku, maze rows, ARC task JSON)")
    ap.add_argument("--out", required=True, help="the picture: .png (a strip of every step) or .gif (one frame "
                    "per step)")
    ap.add_argument("--solution", default=None, help="the right answer, to mark wrong cells")
    ap.add_argument("--solution-file", default=None, help="a file holding the right answer (lines joined)")
    ap.add_argument("--halt-threshold", type=float, default=None)
    ap.add_argument("--max-recursion-depth", type=int, default=None,
                    help="supervision steps at most (default: the run's; more than it trained with is allowed)")
    add_trajectory_arguments(ap)
    ap.add_argument("--trajectory", type=int, default=None, help="draw trajectory K (default: the one infer picks)")
    ap.add_argument("--test-index", type=int, default=0, help="which test input of an ARC task")
    ap.add_argument("--fps", type=float, default=2.0, help="GIF frames per second")
    args = ap.parse_args(argv)
    try:
        trace_format(args.out)  # a bad extension before any work
        params = load(args.run if args.model is None else shipped_model(args.model))
        text = args.text if args.text is not None else read_query(args.puzzle_file)
        solution = read_query(args.solution_file) if args.solution_file else args.solution
        t = trace(params, text, max_recursion_depth=args.max_recursion_depth, halting=args.halting,
                  settle_steps=args.settle_steps, halt_threshold=args.halt_threshold, trajectories=args.trajectories,
                  noise_std=args.noise_std, select=args.select, seed=args.seed, solution=solution,
                  test_index=args.test_index)
        if args.trajectory is not None:
            if not 0 <= args.trajectory < len(t.trajectories):
                raise TRMError(f"--trajectory {args.trajectory}: the trace has {len(t.trajectories)} trajectories "
                               "(--trajectories K runs K)")
            t = t.trajectories[args.trajectory]
        path = plot_trace(t, args.out, fps=args.fps)
    except TRMError as e:
        sys.exit(f"error: {e}")
    print(t)
    print(f"wrote {path}")


if __name__ == "__main__":
    from launcher import launch

    launch(main)
