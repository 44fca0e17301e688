"""Training-loop time per step against the bare compiled train step, measured in the same process.

    python -m benchmarks.loop [--config config.yaml] [--steps 300] [--rounds 2] [--set KEY=VALUE ...]

`--config` is cut to one curriculum stage of `--steps` steps (its first stage's seq_len, batch, dim and
difficulty), with evaluations and periodic checkpoints pushed past the end. Timed:
- bare: the stage's compiled train step called back to back on one batch already on device (fixed key),
  blocked once at the end: the time per step no loop can beat;
- loop: `Trainer.train()`, with the next batches prepared in the feed thread (`prefetch_batches = 2`,
  the default on accelerators) and in the loop's own thread (`prefetch_batches = 0`, the default on
  CPU). Its time per step is read from the run's metrics.jsonl, first training record to last, so
  setup, the first window (compilation), the final evaluation and the checkpoint lie outside it; the
  loop's share is everything else: data,
  augmentation, sharding, transfers, dispatch, the wait on the step QUEUE_DEPTH behind, metric windows
  (log_every), the monitor and the callbacks.
The arms alternate for `--rounds` rounds; the best time of each is printed, with the loop / bare ratio
and the bare step's page faults (malloc on huge pages or not: scripts/launcher.py; run with
TRM_JAX_HUGE_PAGES=0 to compare).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import jax

from benchmarks.harness import REPO_ROOT, one_stage_config, time_training
from scripts.launcher import huge_pages_enabled
from trm_jax.training import create_trainer
from trm_jax.training import distributed as dist


def time_loop(config, run_dir: str, prefetch_batches: int) -> float:
    """Seconds per step of `train()`'s loop, from metrics.jsonl (first window and the end left out)."""
    return time_training(config, run_dir, prefetch_batches)["loop_s_per_step"]


def page_faults() -> int:
    """Page faults of this process so far (minor: memory the kernel had to map and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_bare_step(config, run_dir: str, steps: int) -> tuple[float, float]:
    """Seconds and page faults per step of the compiled step alone, on one device-resident batch."""
    trainer = create_trainer(config.replace(run_dir=run_dir))
    try:
        stages = trainer.run.stages
        stage = stages.build(stages.scheduler.stages[0])
        state, carry = stages.first_state(stage), stages.empty_carry(stage)
        batch = dist.put_sharded(dist.shard(next(stage.iterator)))
        key = jax.random.key_data(jax.random.PRNGKey(0))
        for _ in range(3):  # compile and warm up
            state, carry, metrics = stage.p_step(state, carry, batch, key)
        jax.block_until_ready(metrics)
        t, faults = time.perf_counter(), page_faults()
        for _ in range(steps):
            state, carry, metrics = stage.p_step(state, carry, batch, key)
        jax.block_until_ready((state, metrics))
        return (time.perf_counter() - t) / steps, (page_faults() - faults) / steps
    finally:
        trainer.close()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(REPO_ROOT, "config.yaml"))
    ap.add_argument("--steps", type=int, default=300, help="training steps per timed run")
    ap.add_argument("--rounds", type=int, default=2, help="runs per arm, alternating")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, e.g. --set training.log_every=50 (repeatable)")
    args = ap.parse_args(argv)
    config = one_stage_config(args.config, args.steps, args.overrides)
    faults: list = []  # per step, of each bare-step run

    def run_bare(run_dir: str) -> float:
        seconds, per_step = time_bare_step(config, run_dir, args.steps)
        faults.append(per_step)
        return seconds

    arms = {"loop, feed thread": lambda d: time_loop(config, d, 2),
            "loop, no thread": lambda d: time_loop(config, d, 0), "bare step": run_bare}
    best: dict = {}
    with tempfile.TemporaryDirectory(prefix="trm_jax_bench_loop_") as scratch:
        for r in range(args.rounds):
            for i, (name, run) in enumerate(arms.items()):
                seconds = run(os.path.join(scratch, f"{r}-{i}"))
                best[name] = min(best.get(name, seconds), seconds)
    bare, stage = best["bare step"], config.curriculum.stages[0]
    print(f"{os.path.relpath(args.config)} cut to one stage of {args.steps} steps (batch "
          f"{stage.batch_size or config.training.batch_size}), {args.rounds} round(s), best of each:")
    for name, seconds in best.items():
        print(f"{name:>18}: {seconds * 1e3:9.3f} ms/step  {seconds / bare:6.3f}x the bare step")
    print(f"malloc huge pages {'on' if huge_pages_enabled() else 'off'} (scripts/launcher.py); bare step: "
          f"{min(faults):,.0f} page faults per step")
    return dict(seconds_per_step=best, ratio={k: v / bare for k, v in best.items()},
                malloc_hugepages=huge_pages_enabled(), page_faults_per_step=min(faults))


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
