"""Adapt a trained run to puzzles it never trained on and write the adapted run as a new run directory.

    python scripts/adapt.py --run RUN_DIR --tasks arc-agi-1:evaluation --out NEW_RUN [--steps 2000] [--num-aug 100]
    python scripts/adapt.py --run RUN_DIR --tasks arc-prize-2025/arc-agi_test_challenges.json --out NEW_RUN

ARC runs: every task of --tasks (a source: arc-agi-1 / arc-agi-2 with :evaluation or :training, a Kaggle
*_challenges.json file, or a folder of task JSONs) gets new puzzle identifiers, one per augmentation
(built as the run's build does), trained on its demonstration pairs; NEW_RUN then answers them
(`trm_jax.load(NEW_RUN)`, `trm_jax.infer`) and `scripts/evaluate.py --run NEW_RUN --submission FILE`
votes over their adapted augmentations.
"""

import argparse
import sys

from trm_jax.errors import TRMError


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run directory written by scripts/train.py (or an adapted run)")
    ap.add_argument("--out", required=True, help="the adapted run directory to write (new)")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    ap.add_argument("--no-ema", action="store_true", help="adapt the raw params instead of the EMA")
    ap.add_argument("--tasks", default=None, help="the puzzles to adapt to (ARC: SOURCE[:evaluation|:training], a "
                    "*_challenges.json file or a folder of task JSONs; default: the run's evaluation set)")
    ap.add_argument("--steps", type=int, default=1000, help="adaptation steps (each one supervision step for every "
                    "slot of a fixed batch)")
    ap.add_argument("--num-aug", type=int, default=None, help="ARC: augmentations per task (default 100)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="slots per step (default: the run's training.batch_size, at most the number of rows)")
    ap.add_argument("--lr", type=float, default=None,
                    help="sign-SGD rate of the new embedding rows (default: the run's training.puzzle_emb_lr)")
    ap.add_argument("--train", choices=("embeddings", "all"), default="embeddings",
                    help="embeddings: only the new identifiers' rows train; all: every weight as well")
    ap.add_argument("--replay", type=float, default=None,
                    help="--train all: share of every batch's slots that replay the run's own training samples, so "
                         "the puzzles it trained on keep their answers (default 0.5 where its training set can be "
                         "built; 0: off)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the task data and batches (default: the run's)")
    args = ap.parse_args(argv)
    try:
        from trm_jax.adaptation import adapt, save_adapted_run
        from trm_jax.inference import load

        params = load(args.run, step=args.step, use_ema=not args.no_ema)
        options = {} if args.num_aug is None else {"num_aug": args.num_aug}
        adapted = adapt(params, args.tasks, steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                        train=args.train, replay=args.replay, seed=args.seed, **options)
        out = save_adapted_run(adapted, args.out)
    except TRMError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    from launcher import launch

    launch(main)
