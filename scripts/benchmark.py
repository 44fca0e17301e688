#!/usr/bin/env python
"""Benchmarks that print ratios against a reference measured in the same run.

    python scripts/benchmark.py rag [--num-vectors 100000 --dim 384 --k 10 --batch 1000 --single 200]
    python scripts/benchmark.py model [--quick | --suite] [--network transformer] [--parts train,predict]
    python scripts/benchmark.py time-to-accuracy [--quick] [--budget-s 300 --eval-every-s 30 --givens 40]

Each subcommand lives in its own module of benchmarks/ and registers here with
`add_<name>_arguments(parser)` and a `bench_<name>(args)` entry point, so
benchmarks written by different people do not touch each other's code.
"""

from __future__ import annotations

import argparse
import os
import sys

# the benchmarks/ package sits next to scripts/ in the checkout and is not installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import write_json  # noqa: E402


def _register_rag(sub) -> None:
    from benchmarks.rag import add_rag_arguments, bench_rag

    p = sub.add_parser("rag", help="vector-store search throughput vs faiss IndexFlatIP")
    add_rag_arguments(p)
    p.set_defaults(func=bench_rag)


def _register_model(sub) -> None:
    from benchmarks.model import add_model_arguments, bench_model

    p = sub.add_parser("model", help="train step / predict / compile / memory vs tiny-recursive-model (PyTorch)",
                       description="Training step, predict, compile time and peak memory of trm_jax against the "
                                   "PyTorch tiny-recursive-model, same architecture and work, same run.")
    add_model_arguments(p)
    p.set_defaults(func=bench_model)


def _register_time_to_accuracy(sub) -> None:
    from benchmarks.time_to_accuracy import add_time_to_accuracy_arguments, bench_time_to_accuracy

    p = sub.add_parser("time-to-accuracy", help="held-out Sudoku accuracy vs training time, trm_jax Trainer vs "
                                                "tiny-recursive-model Trainer (PyTorch)",
                       description="Trains the same model on the same Sudoku data with trm_jax's Trainer and with "
                                   "the PyPI tiny-recursive-model's Trainer, each for the same training-time budget "
                                   "(evaluations outside the clock), and prints both held-out curves and the time "
                                   "ratio to reach PyTorch's final accuracy.")
    add_time_to_accuracy_arguments(p)
    p.set_defaults(func=bench_time_to_accuracy)


REGISTRARS = [_register_rag, _register_model, _register_time_to_accuracy]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(
        r.__name__.removeprefix("_register_").replace("_", "-") for r in REGISTRARS) + "}")
    for register in REGISTRARS:
        register(sub)
    args = parser.parse_args(argv)
    results = args.func(args)
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    from scripts.launcher import launch  # the repository root is on sys.path (above)

    launch(main)
