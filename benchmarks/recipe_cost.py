"""Training wall time of whole recipes on this machine, projected from each curriculum stage's measured
loop time per step, every stage of every config timed in this one process.

    python -m benchmarks.recipe_cost [--configs configs/sudoku_cpu.yaml,configs/sudoku_fast.yaml] [--steps 40]

Each stage runs `--steps` steps on its own (`benchmarks.harness.one_stage_config`: the stage's shapes,
depth and data); its loop seconds per step come from the run's metrics (first training record to last, so
compilation lies outside) and are multiplied by the stage's length in the config. Printed per config: each
stage's seconds per step and projected seconds, the sum, and its ratio to the first config's. What the
projection leaves out: one compilation per stage (~10-30 s each on CPU), data generation (cached after the
first run) and the final held-out evaluation. Compare recipes within one run only: machines differ 2x.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from benchmarks.harness import CONFIGS, one_stage_config, time_training, write_json
from trm_jax.config import load_config

DEFAULT_CONFIGS = (os.path.join(CONFIGS, "sudoku_cpu.yaml"), os.path.join(CONFIGS, "sudoku_fast.yaml"))


def stage_lengths(path: str) -> list[int]:
    """Steps of each curriculum stage of the config at `path` (one stage of training.steps without any)."""
    cfg = load_config(path)
    if not cfg.curriculum.stages:
        return [cfg.training.steps]
    lengths = [s.steps for s in cfg.curriculum.stages]
    if None in lengths:
        raise SystemExit(f"{path}: a stage is sized in epochs; recipe_cost needs steps")
    return lengths


def project(path: str, steps: int, tmp: str) -> dict:
    """{"stages": [{"steps", "s_per_step", "projected_s"}], "projected_s"} of the config at `path`."""
    log_every = max(1, steps // 4)
    rows = []
    for i, length in enumerate(stage_lengths(path)):
        cfg = one_stage_config(path, steps, [f"training.log_every={log_every}", "monitoring.enabled=false"], stage=i)
        per_step = time_training(cfg, os.path.join(tmp, f"{os.path.basename(path)}-{i}"))["loop_s_per_step"]
        rows.append(dict(steps=length, s_per_step=per_step, projected_s=length * per_step))
        print(f"  stage {i}: {per_step:.3f} s/step x {length} steps = {length * per_step:.0f} s", flush=True)
    return dict(stages=rows, projected_s=sum(r["projected_s"] for r in rows))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help="comma-separated config files")
    ap.add_argument("--steps", type=int, default=40, help="steps timed per stage")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="trm_recipe_cost_") as tmp:
        for path in args.configs.split(","):
            print(f"{path}:", flush=True)
            results[path] = project(path, args.steps, tmp)
    first = next(iter(results.values()))["projected_s"]
    print(f"\n{'config':<40} {'projected training s':>21} {'ratio to the first':>19}")
    for path, r in results.items():
        r["ratio"] = r["projected_s"] / first
        print(f"{path:<40} {r['projected_s']:>21.0f} {r['ratio']:>19.3f}")
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
