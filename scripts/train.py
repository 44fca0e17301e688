#!/usr/bin/env python
"""Train a Tiny Recursive Model from a YAML config.

    python scripts/train.py --config config.yaml
    python scripts/train.py --config config.yaml --resume
    python scripts/train.py --config configs/tiny.yaml --set training.steps=200 --set run_dir=runs/short

Writes run_dir/{config.yaml, tokenizer/, checkpoints/, metrics.jsonl, train.log, rag/, best/} and prints
the held-out exact accuracy at the end. SIGTERM/SIGINT, training.early_stopping and
training.max_time_minutes stop with a checkpoint; `--resume` continues from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="YAML config (default: config.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue the run in run_dir from its last checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.steps=100 (repeatable)")
    parser.add_argument("--run-dir", help="shortcut for --set run_dir=DIR")
    parser.add_argument("--quiet", action="store_true", help="only warnings on the console")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src.xla_bridge", "orbax"):  # Orbax logs every save step at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from trm_jax.errors import TRMError
    from trm_jax.training import as_config, create_trainer

    overrides = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
    try:
        config = as_config(args.config, overrides)
        trainer = create_trainer(config, resume=args.resume)
        try:
            result = trainer.train()
        finally:
            trainer.close()
    except TRMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import jax
    if jax.process_index() == 0:
        ev = result.eval or {}
        state = f"stopped early, {result.stop_reason} (resume with --resume)" if result.interrupted else "done"
        print(f"training {state}: step {result.step}, {result.wall_time_s:.1f}s, run dir {result.run_dir}")
        if ev:
            print(f"held-out exact accuracy: {ev['exact_accuracy']:.4f} (token accuracy {ev['token_accuracy']:.4f}, "
                  f"recursion depth {ev['recursion_depth']:.2f}, {ev['num_samples']} samples)")
        print("final:", json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in ev.items()}))
    return 0


if __name__ == "__main__":
    from launcher import launch

    launch(main)
