"""Step time and memory of the train step with a large puzzle-embedding table vs without one.

    python -m benchmarks.puzzle_embedding [--rows 1000000] [--ndim 512] [--steps 10]

Three models that differ only in the table: `rows` x `ndim` (the ARC-AGI size is ~876k x 512),
a 1-row table (same compute, no memory), and no puzzle embedding at all. Memory is XLA's own account
of the compiled step (arguments + temporaries + outputs - donated aliases), so it needs no
allocator tracing; time is the best of `--steps` back-to-back steps after compilation.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from trm_jax.config import ModelConfig, TrainingConfig
from trm_jax.models import PUZZLE_EMB, make_model
from trm_jax.training import distributed as dist
from trm_jax.training.state import make_optimizer, make_train_state
from trm_jax.training.step import StepSpec, empty_train_carry, make_train_step, pmap_train_step


def measure(rows: int, ndim: int, *, dim: int, seq_len: int, batch: int, steps: int) -> dict:
    cfg = ModelConfig(variant="official", network="transformer", dim=dim, depth=1, num_heads=2,
                      num_refinement_blocks=2, num_latent_refinements=1, puzzle_emb_ndim=ndim,
                      num_puzzle_identifiers=rows, puzzle_emb_len=-(-512 // dim), loss="stablemax")
    model = make_model(cfg, 12, seq_len)
    training = TrainingConfig(optimizer="adam_atan2", warmup_steps=0, lr_schedule="constant", halt_exploration_prob=0)
    shapes = jax.eval_shape(lambda: model.init_params(jax.random.key(0)))
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    if PUZZLE_EMB in params:  # filled in place: random init of a 2 GB table would dominate the run
        params[PUZZLE_EMB] = np.zeros((rows, ndim), np.float32)
    tx = make_optimizer(training)
    spec = StepSpec.create(training, total_steps=1000, global_batch=batch, peak_lr=1e-4)
    step = pmap_train_step(make_train_step(model, spec))
    state = dist.replicate(make_train_state(params, tx))
    carry = dist.put_sharded(dist.shard(empty_train_carry(batch, model)))
    rng = np.random.default_rng(0)
    batches = [dict(inputs=rng.integers(2, 12, (batch, seq_len)).astype(np.int32),
                    labels=rng.integers(2, 12, (batch, seq_len)).astype(np.int32),
                    puzzle_ids=rng.integers(0, rows, batch).astype(np.int32),
                    difficulty=np.zeros(batch, np.float32)) for _ in range(4)]
    key = np.asarray(jax.random.key_data(jax.random.key(0)))
    compiled = step.lower(state, carry, dist.shard(batches[0]), key).compile()
    mem = compiled.memory_analysis()
    peak = mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        state, carry, m = step(state, carry, dist.shard(batches[i % 4]), key)
        jax.block_until_ready(m["loss"])
        times.append(time.perf_counter() - t)
    return dict(rows=rows, ndim=ndim, table_bytes=rows * ndim * 4, step_s=min(times[2:]), peak_bytes=peak,
                temp_bytes=mem.temp_size_in_bytes)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--ndim", type=int, default=512)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    kw = dict(dim=args.dim, seq_len=args.seq_len, batch=args.batch_size, steps=args.steps)
    big = measure(args.rows, args.ndim, **kw)
    one = measure(1, args.ndim, **kw)
    none = measure(1, 0, **kw)
    mb = 1 / 2 ** 20
    print(f"{'table':>22} {'step ms':>9} {'XLA peak MB':>12} {'temp MB':>9}")
    for name, r in ((f"{args.rows} x {args.ndim}", big), (f"1 x {args.ndim}", one), ("none", none)):
        print(f"{name:>22} {r['step_s'] * 1e3:9.1f} {r['peak_bytes'] * mb:12.1f} {r['temp_bytes'] * mb:9.1f}")
    print(f"step time, big table / 1-row table: {big['step_s'] / one['step_s']:.3f}x (target <= 1.10)")
    print(f"memory above the 1-row table: {(big['peak_bytes'] - one['peak_bytes']) * mb:.1f} MB for a "
          f"{big['table_bytes'] * mb:.1f} MB table: {(big['peak_bytes'] - one['peak_bytes']) / big['table_bytes']:.3f}x "
          f"(target <= 1.10)")


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
