"""predict with batch compaction vs one while_loop over the whole batch, on a trained run's eval set.

    python -m benchmarks.predict_compaction --run RUN_DIR [--halt-threshold 0.9] [--repeats 3]

Prints the best-of-N wall time of both, their ratio, the recursion-depth histogram, and checks that
both give the same tokens and depths.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import trm_jax
from benchmarks.harness import best_time
from trm_jax.evaluation import dataset_for
from trm_jax.models import predict


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--halt-threshold", type=float, default=None)
    ap.add_argument("--max-recursion-depth", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    p = trm_jax.load(args.run)
    ds = dataset_for(p)
    tokens, ids = ds.inputs, ds.puzzle_ids
    kw = dict(puzzle_ids=ids, halt_threshold=args.halt_threshold, max_recursion_depth=args.max_recursion_depth)
    times, outs = {}, {}
    for compact in (False, True, False, True):  # alternate, after a warm-up call of each
        fn = lambda: jax.block_until_ready(predict(p.model, p.params, tokens, compact=compact, **kw))  # noqa: E731
        outs[compact] = fn()
        best = best_time(fn, args.repeats, warmup=False)
        times[compact] = min(times.get(compact, best), best)
    same = (np.array_equal(outs[True].tokens, outs[False].tokens)
            and np.array_equal(outs[True].recursion_depth, outs[False].recursion_depth))
    depth = np.asarray(outs[True].recursion_depth)
    print(f"{len(tokens)} samples, recursion depth mean {depth.mean():.2f}, histogram "
          f"{dict(zip(*np.unique(depth, return_counts=True)))}")
    print(f"one while_loop {times[False] * 1e3:.1f} ms, compacting {times[True] * 1e3:.1f} ms: "
          f"speed-up {times[False] / times[True]:.2f}x; identical results: {same}")


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
