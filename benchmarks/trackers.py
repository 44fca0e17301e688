"""Training-loop time of the default run with the experiment trackers on against off, in the same run.

    python -m benchmarks.trackers [--steps 300] [--rounds 2] [--wandb] [--config config.yaml]

Each run is a fresh process training `--config` cut to one curriculum stage of `--steps` steps (the
default config's first stage: same model, data, batch, retrieval, log_every and monitoring), with
`logging.tensorboard` off or on (and, with `--wandb`, W&B in offline mode); the runs alternate (off,
on, off, on, ...) so load drift on the machine hits every arm alike. The loop time is read from each
run's metrics.jsonl, from its first training record to its last, so setup, the first window's
compilation, the final evaluation and the trackers' start and finish lie outside it; `train()`'s
wall time (which includes them) is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = "@@RESULT@@"


def run_training(config: str, steps: int, arm: str, run_dir: str) -> dict:
    """Worker side: train one arm in this process; loop seconds per step and train() wall time."""
    from trm_jax.training import as_config, create_trainer, read_metrics

    overrides = [f"run_dir={run_dir}", f"curriculum.stages=[{{steps: {steps}, difficulty: 0.0}}]",
                 f"logging.tensorboard={'true' if arm == 'tensorboard' else 'false'}"]
    if arm == "wandb":
        overrides += ["logging.wandb.project=trm-jax-benchmark", "logging.wandb.mode=offline"]
    trainer = create_trainer(as_config(config, overrides))
    t = time.perf_counter()
    try:
        result = trainer.train()
    finally:
        trainer.close()
    train_s = time.perf_counter() - t
    train = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    first, last = train[0], train[-1]
    if last["step"] <= first["step"]:
        raise SystemExit(f"--steps {steps} gives one training record; raise it above training.log_every")
    return dict(arm=arm, step=result.step, train_s=train_s,
                loop_s_per_step=(last["timestamp"] - first["timestamp"]) / (last["step"] - first["step"]))


def _run_arm(args, arm: str, scratch: str, index: int) -> dict:
    run_dir = os.path.join(scratch, f"{arm}-{index}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    if arm == "wandb":  # offline, every W&B file in the scratch directory
        env.update(WANDB_MODE="offline", WANDB_SILENT="true", **{var: os.path.join(scratch, var.lower()) for var in
                                                                 ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")})
    spec = json.dumps(dict(config=args.config, steps=args.steps, arm=arm, run_dir=run_dir))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.trackers", "--worker", spec], env=env,
                          capture_output=True, text=True, timeout=args.timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f"benchmark run '{arm}' failed (exit {proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=os.path.join(REPO_ROOT, "config.yaml"))
    ap.add_argument("--steps", type=int, default=300, help="training steps per run (one curriculum stage)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per arm, alternating between the arms")
    ap.add_argument("--wandb", action="store_true", help="also time W&B in offline mode")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run counts as hung")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.config = os.path.abspath(args.config)
    if args.worker:
        spec = json.loads(args.worker)
        print(RESULT + json.dumps(run_training(spec["config"], spec["steps"], spec["arm"], spec["run_dir"])))
        return {}
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
    from trm_jax.huge_pages import rerun_with_huge_pages

    rerun_with_huge_pages()
    main()
