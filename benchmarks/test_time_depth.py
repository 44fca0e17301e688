"""Accuracy against test-time depth on a trained Sudoku model: every puzzle runs the deepest cap once, its
answer recorded after every supervision step, and each stop rule is read off that record at every cap.

    python -m benchmarks.test_time_depth --run RUN_DIR_OR_SHIPPED_NAME [--num 100] [--depths 8,16,...,1024]

Test sets: held-out generated puzzles at `--givens` (the seeds of benchmarks.sudoku_accuracy) and the
shipped Sudoku-Extreme sample (100 puzzles). At each depth cap D:

  full     the answer after D supervision steps (the halting head switched off)
  head     the halting head at the model's threshold: the first step it fires, else D
  settled  the first step whose answer has been unchanged for `settle_steps` steps (the model's), else D

One record to the deepest cap costs what one full-depth run at that cap costs; the caps below it come
free. `stops_from_record` applies predict's stop rules to the record (tests/benchmarks check it against
predict), so each row is what `predict(max_recursion_depth=D, halting=...)` answers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import trm_jax
from benchmarks.harness import write_json
from benchmarks.settled_halting import test_sets
from trm_jax.models import NO_EARLY_HALT, predict_steps, token_matches
from trm_jax.models.predict import DEFAULT_SETTLE_STEPS

DEPTHS = (8, 16, 32, 64, 128, 256, 512, 1024)


def stops_from_record(tokens: np.ndarray, halt_prob: np.ndarray, depth: int, rule: str, *, threshold: float = 0.5,
                      settle_steps: int = DEFAULT_SETTLE_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """(stop step [batch], 1-based; stopped by the rule, not by the cap [batch] bool) of each sample at
    cap `depth`, from answers `tokens` [steps >= depth, batch, seq_len] and `halt_prob` [steps, batch]
    recorded without early stopping. Rules as predict's: "full" (never early), "head" (halt_prob >=
    threshold) or "settled" (the answer equal to the previous step's for `settle_steps` steps in a row)."""
    tokens, halt_prob = tokens[:depth], halt_prob[:depth]
    if rule == "full":
        fires = np.zeros(halt_prob.shape, bool)
    elif rule == "head":
        fires = halt_prob >= threshold
    elif rule == "settled":
        same = np.concatenate([np.zeros((1, tokens.shape[1]), bool), np.all(tokens[1:] == tokens[:-1], -1)])
        run = np.zeros(same.shape, np.int64)  # steps in a row the answer has not changed
        for s in range(1, depth):
            run[s] = np.where(same[s], run[s - 1] + 1, 0)
        fires = run >= settle_steps
    else:
        raise ValueError(f"rule must be 'full', 'head' or 'settled', got {rule!r}")
    fired = fires.any(0)
    return np.where(fired, fires.argmax(0) + 1, depth), fired


def record(p, ds, depth: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [depth, N, seq_len], halt_prob [depth, N]) of every sample of `ds`, no early stopping."""
    tokens, halt_prob = [], []
    for i in range(0, len(ds.inputs), batch_size):
        ids = None if ds.puzzle_ids is None else ds.puzzle_ids[i:i + batch_size]
        r = predict_steps(p.model, p.params, ds.inputs[i:i + batch_size], puzzle_ids=ids,
                          halt_threshold=NO_EARLY_HALT, max_recursion_depth=depth)
        tokens.append(r.tokens[:, 0])
        halt_prob.append(r.halt_prob[:, 0])
    return np.concatenate(tokens, 1), np.concatenate(halt_prob, 1)


def sweep(tokens: np.ndarray, halt_prob: np.ndarray, labels: np.ndarray, depths, *, threshold: float,
          settle_steps: int) -> dict:
    """{rule: {depth: {"exact", "steps", "stopped"}}}: exact accuracy, mean steps and the share stopped by
    the rule (not the cap) of each rule at each cap. A rule fires where it fires whatever the cap, so each
    rule's stops are read once at the deepest cap and cut at each shallower one."""
    out: dict = {}
    n = np.arange(tokens.shape[1])
    for rule in ("full", "head", "settled"):
        deepest, fired = stops_from_record(tokens, halt_prob, max(depths), rule, threshold=threshold,
                                           settle_steps=settle_steps)
        out[rule] = {}
        for d in depths:
            stop = np.minimum(deepest, d)
            exact = token_matches(tokens[stop - 1, n], labels)[2]
            out[rule][d] = dict(exact=float(exact.mean()), steps=float(stop.mean()),
                                stopped=float((fired & (deepest <= d)).mean()))
    return out


def random_rows(total: int, num: int, seed: int) -> np.ndarray:
    """`num` of `total` rows drawn without replacement (all of them where num >= total), in file order."""
    return np.sort(np.random.default_rng(seed).permutation(total)[:num])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a run directory, a pretrained directory or a shipped name")
    ap.add_argument("--num", type=int, default=100, help="generated puzzles per number of givens")
    ap.add_argument("--givens", default="25")
    ap.add_argument("--depths", default=",".join(map(str, DEPTHS)), help="depth caps, comma-separated")
    ap.add_argument("--sample-num", type=int, default=None,
                    help="N puzzles of the Extreme sample, drawn at random with --seed (default all; its "
                    "rows are not in random order: the first ones are the easier)")
    ap.add_argument("--seed", type=int, default=0, help="the draw of --sample-num")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    depths = sorted(int(d) for d in args.depths.split(","))
    p = trm_jax.load(args.run)
    threshold, settle_steps = float(p.model.halt_threshold), int(p.model.settle_steps)
    print(f"{args.run}: T={p.model.num_refinement_blocks} n={p.model.num_latent_refinements}, head threshold "
          f"{threshold:g}, settle_steps {settle_steps}")
    results = {}
    for name, ds in test_sets(p, args.num, [int(g) for g in args.givens.split(",")]).items():
        if name == "Extreme sample" and args.sample_num is not None:
            ds = ds.subset(random_rows(len(ds.inputs), args.sample_num, args.seed))
        t = time.monotonic()
        tokens, halt_prob = record(p, ds, depths[-1], args.batch_size)
        rows = sweep(tokens, halt_prob, ds.labels, depths, threshold=threshold, settle_steps=settle_steps)
        results[name] = dict(rows, puzzles=len(ds.inputs), record_s=time.monotonic() - t)
        print(f"\n{name} ({len(ds.inputs)} puzzles, record to depth {depths[-1]} in {time.monotonic() - t:.0f} s)")
        print(f"{'depth':>6} " + " ".join(f"{r + ' exact':>14} {'steps':>7}" for r in rows))
        for d in depths:
            print(f"{d:>6} " + " ".join(f"{rows[r][d]['exact']:>14.3f} {rows[r][d]['steps']:>7.1f}" for r in rows))
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
