"""Is a flat held-out curve the halting or the weights? Trains trm_jax's arm of the time-to-accuracy
benchmark (`benchmarks.time_to_accuracy`: same options, same data) for its budget, then predicts the
held-out puzzles and as many training puzzles with the final EMA weights and the live weights: at the
halting threshold, at 0.9 and at full depth (no early halting: every puzzle runs `--max-recursion-depth`
steps), and with the halting head's weights swapped between the two models, which says whether the
head or the network's state is what halts early.

    python -m benchmarks.halting_check                            # refill, dim 64, 300 s
    python -m benchmarks.halting_check --halted-samples drop
    python -m benchmarks.halting_check --quick                    # tiny, a few seconds

Prints one line per (weights, puzzles, threshold): exact accuracy and mean recursion depth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from benchmarks.harness import config_from_args, write_json
from benchmarks.time_to_accuracy import DEFAULT, QUICK, add_time_to_accuracy_arguments, label, sudoku_arrays, train_jax
from trm_jax.models import NO_EARLY_HALT, predict, token_matches
from trm_jax.training import Callback

HALT_HEAD = "to_halt_pred"  # TinyRecursiveModel's halting head (the PyPI package's name)


def exact_and_depth(model, params, inputs, labels, threshold: float) -> tuple[float, float]:
    pred = predict(model, params, inputs, halt_threshold=threshold)
    _, _, exact = token_matches(np.asarray(pred.tokens), labels)
    return float(exact.mean()), float(np.mean(pred.recursion_depth))


def with_halt_head(params: dict, donor: dict) -> dict:
    return {**params, HALT_HEAD: donor[HALT_HEAD]}


class HaltingCheck(Callback):
    """At the end of training: the table above, from the run's final weights (`TrainResult`)."""

    def __init__(self, data: dict, halt_threshold: float):
        self.data, self.threshold, self.rows = data, halt_threshold, []

    def on_train_end(self, trainer, result) -> None:
        ema, live = result.params, result.raw_params
        n = len(self.data["eval_inputs"])
        sets = {"held-out": (self.data["eval_inputs"], self.data["eval_labels"]),
                "train": (self.data["train_inputs"][:n], self.data["train_labels"][:n])}
        weights = {"ema": ema, "live": live, "ema, live halting head": with_halt_head(ema, live),
                   "live, ema halting head": with_halt_head(live, ema)}
        for name, params in weights.items():
            for split, (inputs, labels) in sets.items():
                if "head" in name and split == "train":
                    continue
                for threshold in (self.threshold, 0.9, NO_EARLY_HALT):
                    exact, depth = exact_and_depth(result.model, params, inputs, labels, threshold)
                    row = dict(weights=name, puzzles=split, threshold=threshold, exact=exact, depth=depth)
                    self.rows.append(row)
                    label = "full depth" if threshold == NO_EARLY_HALT else f"threshold {threshold:g}"
                    print(f"{name:>24s}  {split:>8s}  {label:>14s}: exact {exact:.3f}, depth {depth:5.2f}",
                          flush=True)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_time_to_accuracy_arguments(p)
    p.add_argument("--json", default=None, help="write the rows and the curve to this path")
    args = p.parse_args(argv)
    cfg = config_from_args(args, DEFAULT, QUICK)
    print(f"halting check: trm_jax's time-to-accuracy arm; {label(cfg)}", flush=True)
    data = sudoku_arrays(cfg)
    check = HaltingCheck(data, cfg.halt_threshold)
    run = train_jax(cfg, data, callbacks=[check])
    print(f"trained {run['steps']} steps in {run['train_s']:.1f} s; last held-out point: "
          f"{json.dumps({k: round(v, 4) for k, v in run['curve'][-1].items()})}")
    out = {"config": dataclasses.asdict(cfg), "run": run, "rows": check.rows}
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
