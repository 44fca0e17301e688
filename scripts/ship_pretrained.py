"""Ship a trained run as a model of the package: evaluate it on newly generated held-out data of its task and
write trm_jax/pretrained/<name>/ (save_pretrained's format) with a card of those numbers and how to train it again.

  python scripts/ship_pretrained.py --run runs/sudoku_cpu --name sudoku --config configs/sudoku_cpu.yaml
  python scripts/ship_pretrained.py --run runs/tiny --name tiny --config configs/tiny.yaml --out /tmp/shipped

The held-out metrics are exact accuracy (and mean recursion depth) through trm_jax.infer, with the model's own
halting and depth, on --num-samples samples of the task's eval split generated with config seed --seed (a model
that retrieves keeps its own seed: its eval split asks about facts held out of training). tests/test_pretrained.py
checks every shipped model against its card on samples of another seed.
"""

import argparse
import json
import os
import sys

from trm_jax.errors import TRMError


def wall_time_s(run_dir: str):
    """Seconds from the run's start (its config.yaml, written first) to the last record of its metrics.jsonl,
    data generation and compilation included; None where the run has no log."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return None
    config = os.path.join(run_dir, "config.yaml")
    stamps = [os.path.getmtime(config)] if os.path.isfile(config) else []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                stamps.append(float(json.loads(line)["timestamp"]))
            except (ValueError, KeyError, TypeError):
                continue
    return round(max(stamps) - min(stamps), 1) if len(stamps) > 1 else None


def directory_sizes(directory: str) -> dict:
    """{relative path: bytes} of every file under `directory`."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = os.path.getsize(path)
    return dict(sorted(out.items()))


def main(argv=None):
    from trm_jax.inference import load  # after the re-exec
    from trm_jax.pretrained import SHIPPED_DIR, held_out_metrics, save_pretrained

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the trained run directory (scripts/train.py)")
    ap.add_argument("--name", required=True, help="the model's name: trm_jax.load(NAME) loads it")
    ap.add_argument("--config", default=None, help="the config file it was trained from, as the card shows it "
                    "(e.g. configs/sudoku_cpu.yaml): the card's re-train command")
    ap.add_argument("--command", default=None, help="the re-train command the card shows (default: "
                    "python scripts/train.py --config CONFIG)")
    ap.add_argument("--out", default=SHIPPED_DIR, help=f"the folder the model's directory goes in (default "
                    f"{SHIPPED_DIR}: the package's shipped models)")
    ap.add_argument("--num-samples", type=int, default=1000, help="held-out samples the card's metrics are measured on")
    ap.add_argument("--seed", type=int, default=1000, help="config seed the held-out samples are generated with")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--wall-time-s", type=float, default=None,
                    help="training wall time for the card (default: the span of the run's metrics.jsonl)")
    ap.add_argument("--no-wall-time", action="store_true",
                    help="state no wall time (the run was paused and resumed, or shared its machine)")
    args = ap.parse_args(argv)
    if not args.name.isidentifier():
        sys.exit(f"error: --name {args.name!r}: use a plain name (letters, digits, underscores), e.g. sudoku")
    try:
        params = load(args.run)
        metrics = held_out_metrics(params, args.num_samples, args.seed)
        source = (f"trm_jax.infer's exact answers on {metrics['num_samples']} newly generated held-out samples "
                  f"of the task's eval split (scripts/ship_pretrained.py --num-samples {args.num_samples} "
                  f"--seed {args.seed})")
        command = args.command or (f"python scripts/train.py --config {args.config}" if args.config else None)
        training = dict(name=args.name, config=args.config, steps=params.step, command=command,
                        wall_time_s=None if args.no_wall_time else
                        args.wall_time_s if args.wall_time_s is not None else wall_time_s(args.run))
        os.makedirs(args.out, exist_ok=True)
        out = save_pretrained(params, os.path.join(args.out, args.name), dtype=args.dtype, metrics=metrics,
                              metrics_source=source, training=training)
    except TRMError as e:
        sys.exit(f"error: {e}")
    sizes = directory_sizes(out)
    print(f"{out}: exact accuracy {metrics['exact_accuracy']:.4f} on {metrics['num_samples']} held-out samples, "
          f"mean recursion depth {metrics['mean_recursion_depth']:.2f}")
    for name, size in sizes.items():
        print(f"  {name}: {size / 1e6:.3f} MB")
    print(f"  total: {sum(sizes.values()) / 1e6:.3f} MB")


if __name__ == "__main__":
    from launcher import launch

    launch(main)
