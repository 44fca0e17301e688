"""Training-loop time of the default run with the experiment trackers on against off, in the same run.

    python -m benchmarks.trackers [--steps 300] [--rounds 2] [--wandb] [--config config.yaml]

Each run is a fresh process training `--config` cut to one curriculum stage of `--steps` steps
(`benchmarks.harness.one_stage_config`: the first stage's shapes, the same model, data, batch,
retrieval, log_every and monitoring, no evaluation or checkpoint inside the run), with
`logging.tensorboard` off or on (and, with `--wandb`, W&B in offline mode); the runs alternate (off,
on, off, on, ...) so load drift on the machine hits every arm alike. The loop time is read from each
run's metrics.jsonl, from its first training record to its last, so setup, the first window's
compilation, the final evaluation and the trackers' start and finish lie outside it; `train()`'s
wall time (which includes them) is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from benchmarks.harness import REPO_ROOT, one_stage_config, run_worker, time_training, worker_env

RUN_ARM = "benchmarks.trackers:run_arm"


def run_arm(spec: dict) -> dict:
    """Worker entry: train one arm; its loop seconds per step and train() wall time."""
    arm = spec["arm"]
    overrides = [f"logging.tensorboard={'true' if arm == 'tensorboard' else 'false'}"]
    if arm == "wandb":
        overrides += ["logging.wandb.project=trm-jax-benchmark", "logging.wandb.mode=offline"]
    return dict(arm=arm, **time_training(one_stage_config(spec["config"], spec["steps"], overrides), spec["run_dir"]))


def _run_arm(args, arm: str, scratch: str, index: int) -> dict:
    extra = {}
    if arm == "wandb":  # offline, every W&B file in the scratch directory
        extra = dict(WANDB_MODE="offline", WANDB_SILENT="true",
                     **{var: os.path.join(scratch, var.lower()) for var in
                        ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")})
    spec = dict(config=args.config, steps=args.steps, arm=arm, run_dir=os.path.join(scratch, f"{arm}-{index}"))
    return run_worker(RUN_ARM, spec, worker_env(**extra), args.timeout)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(REPO_ROOT, "config.yaml"))
    ap.add_argument("--steps", type=int, default=300, help="training steps per run (one curriculum stage)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per arm, alternating between the arms")
    ap.add_argument("--wandb", action="store_true", help="also time W&B in offline mode")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run counts as hung")
    args = ap.parse_args(argv)
    args.config = os.path.abspath(args.config)
    arms = ["off", "tensorboard"] + (["wandb"] if args.wandb else [])
    runs: dict = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="trm_jax_bench_trackers_") as scratch:
        for index in range(args.rounds):
            for arm in arms:
                runs[arm].append(_run_arm(args, arm, scratch, index))
    best = {arm: dict(loop_s_per_step=min(r["loop_s_per_step"] for r in rs), train_s=min(r["train_s"] for r in rs))
            for arm, rs in runs.items()}
    print(f"{os.path.relpath(args.config)} cut to {args.steps} steps, {args.rounds} run(s) per arm (best of them):")
    print(f"{'trackers':>12} {'loop ms/step':>13} {'train() s':>10}")
    for arm in arms:
        print(f"{arm:>12} {best[arm]['loop_s_per_step'] * 1e3:13.2f} {best[arm]['train_s']:10.1f}")
    ratios = {}
    for arm in arms[1:]:
        ratios[arm] = dict(loop=best[arm]["loop_s_per_step"] / best["off"]["loop_s_per_step"],
                           train=best[arm]["train_s"] / best["off"]["train_s"])
        print(f"{arm} on / off: loop {ratios[arm]['loop']:.3f}x, train() {ratios[arm]['train']:.3f}x "
              "(target: loop <= 1.0x within noise)")
    return dict(runs=runs, best=best, ratios=ratios)


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
