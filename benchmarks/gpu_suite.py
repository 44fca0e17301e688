"""One bounded GPU run at the official recipes' shapes: train step (float32, bfloat16), tokens/s, MFU, predict.

    PYTHONPATH=. python -m benchmarks.gpu_suite                  # a GPU: the recipes' shapes, under 4 minutes
    PYTHONPATH=. python -m benchmarks.gpu_suite --quick          # tiny shapes on any device (checks the code)

For configs/sudoku_extreme_mlp.yaml and configs/arc_agi_1.yaml (model, batch, sequence length, the
ARC puzzle table's size, optimizer settings): the Trainer's own compiled train step
(`training.step.pmap_train_step(make_train_step(...))`: persistent carry, puzzle-embedding rows by sign-SGD, AdamATan2,
EMA) on synthetic data of the recipe's shapes, and `predict` over 16 supervision steps with halting
off (every sample runs them all, the official evaluation's cost). Each (recipe, dtype) runs in its
own process with a hard time limit, most useful first (bfloat16, the recipes' dtype, before
float32); a part that fails or runs out of time prints why and the next one starts, and no part
starts without enough of `--budget-s` left. Printed per part: compile + first step, step time, steps/s,
tokens/s (sample tokens; the 16-position puzzle prefix not counted), model FLOPs per step (matmuls,
benchmarks.flops, the same formula the CPU benchmarks use) and MFU against the device's dense
bfloat16 peak (`benchmarks.flops.PEAK_TFLOPS`; for float32 also against the TF32 peak, the tensor-core
path XLA uses for float32 matmuls by default on GPUs), predict puzzles/s, and peak device memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Optional

import numpy as np

from benchmarks.flops import device_peak, predict_flops, train_step_flops
from benchmarks.harness import CONFIGS, BenchConfig, WorkerError, answer, run_worker, worker_env, write_json

RECIPES = ("sudoku_extreme_mlp", "arc_agi_1")
DTYPES = ("bfloat16", "float32")
PREDICT_STEPS = 16  # the recipes' max_recursion_depth: predict with halting off runs them all
QUICK = dict(dim=32, batch_size=16, seq_len=24, rows=64, num_latent_refinements=2, num_refinement_blocks=2,
             predict_steps=2, steps=2)


def recipe_shapes(recipe: str, quick: bool, quick_shapes: Optional[dict] = None) -> dict:
    """Model config, training config, batch, sequence length and step count of a recipe (shrunk with quick
    to QUICK, with `quick_shapes`' entries in place of QUICK's)."""
    from trm_jax.config import load_config

    cfg = load_config(os.path.join(CONFIGS, f"{recipe}.yaml"))
    model, seq_len, batch = cfg.model, cfg.data.seq_len, cfg.training.batch_size
    steps, predict_steps = 5, PREDICT_STEPS
    if quick:
        q = {**QUICK, **(quick_shapes or {})}
        model = dataclasses.replace(model, dim=q["dim"], num_heads=1, puzzle_emb_ndim=q["dim"],
                                    num_latent_refinements=q["num_latent_refinements"],
                                    num_refinement_blocks=q["num_refinement_blocks"],
                                    num_puzzle_identifiers=min(model.num_puzzle_identifiers, q["rows"]))
        seq_len, batch = min(seq_len, q["seq_len"]), q["batch_size"]
        steps, predict_steps = q["steps"], q["predict_steps"]
    return dict(model=model, training=cfg.training, seq_len=seq_len, batch_size=batch, steps=steps,
                predict_steps=predict_steps)


def _train_step_fn(model, spec, log):
    """The Trainer's pmapped step; where pmap fails (a JAX without it), the same step under jit(vmap)
    with the same axis name (its collectives over one device are the identity)."""
    import jax

    from trm_jax.training.step import AXIS, make_train_step, pmap_train_step

    try:
        return pmap_train_step(make_train_step(model, spec)), "pmap"
    except Exception as e:  # noqa: BLE001 (a JAX version without pmap: any error type)
        log(f"pmap step unavailable ({type(e).__name__}: {e}); using jit(vmap)")
        return jax.jit(jax.vmap(make_train_step(model, spec), axis_name=AXIS, in_axes=(0, 0, 0, None)),
                       donate_argnums=(0, 1)), "jit(vmap)"


def _synthetic(mcfg, batch: int, seq_len: int, seed: int = 0) -> dict:
    """Random rows of the recipe's shapes: tokens, labels, puzzle identifiers within the table."""
    rng = np.random.default_rng(seed)
    return dict(inputs=rng.integers(2, mcfg.num_tokens, (batch, seq_len)).astype(np.int32),
                labels=rng.integers(2, mcfg.num_tokens, (batch, seq_len)).astype(np.int32),
                puzzle_ids=rng.integers(0, max(mcfg.num_puzzle_identifiers, 1), batch).astype(np.int32),
                difficulty=np.zeros(batch, np.float32))


def _compiled_step(model, mcfg, step_spec, params, batch: int, seq_len: int, log, limit=None):
    """(compiled step, state, carry, fresh batch, key, batch): the Trainer's step compiled ahead of time;
    where XLA's memory account of it exceeds the device's memory (or `limit` bytes), the batch is halved
    (and said so) down to 4."""
    import jax

    from trm_jax.training import distributed as dist
    from trm_jax.training.state import make_optimizer, make_train_state
    from trm_jax.training.step import empty_train_carry

    device = jax.devices()[0]
    limit = limit or (device.memory_stats() or {}).get("bytes_limit")
    step, how = _train_step_fn(model, step_spec, log)
    while True:
        state = dist.replicate(make_train_state(params, make_optimizer(step_spec)))
        fresh = dist.put_sharded(dist.shard(_synthetic(mcfg, batch, seq_len)))
        carry = dist.put_sharded(dist.shard(empty_train_carry(batch, model)))
        key = jax.random.key_data(jax.random.PRNGKey(0))
        t0 = time.perf_counter()
        compiled = step.lower(state, carry, fresh, key).compile()
        log(f"train step compiled ({how}, batch {batch}): {time.perf_counter() - t0:.1f} s")
        try:
            ma = compiled.memory_analysis()
            ma = ma[0] if isinstance(ma, (list, tuple)) else ma
            need = ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes
        except Exception:  # noqa: BLE001 (memory analysis is best effort across backends)
            need = None
        if limit is None or need is None or need <= 0.95 * limit or batch <= 4:
            return compiled, state, carry, fresh, key, batch
        log(f"batch {batch} needs {need / 2 ** 30:.0f} GB of the device's {limit / 2 ** 30:.0f} GB: halving it")
        del state, carry, fresh, compiled
        batch //= 2


def measure(spec: dict) -> dict:
    """Worker entry: one recipe at one dtype; prints each number as soon as it is measured."""
    import jax

    from trm_jax.models import init_params, make_model, predict
    from trm_jax.training.step import StepSpec

    name = f"{spec['recipe']} {spec['dtype']}"
    log = lambda msg: print(f"[{name}] {msg}", flush=True)  # noqa: E731
    shapes = recipe_shapes(spec["recipe"], spec["quick"], spec.get("quick_shapes"))
    mcfg = dataclasses.replace(shapes["model"], dtype=spec["dtype"])
    seq_len = shapes["seq_len"]
    device = jax.devices()[0]
    log(f"{device.device_kind} x{jax.local_device_count()}: dim {mcfg.dim}, batch {shapes['batch_size']}, "
        f"seq {seq_len} + prefix {mcfg.puzzle_emb_len}, n={mcfg.num_latent_refinements} T={mcfg.num_refinement_blocks}, puzzle "
        f"table {mcfg.num_puzzle_identifiers} rows")
    model = make_model(mcfg, mcfg.num_tokens, seq_len)
    params = init_params(model, jax.random.key(0))
    step_spec = StepSpec.create(shapes["training"], total_steps=shapes["training"].steps,
                                global_batch=shapes["batch_size"], peak_lr=shapes["training"].learning_rate)
    limit = spec["memory_limit_gb"] * 2 ** 30 if spec.get("memory_limit_gb") else None
    step, state, carry, fresh, key, batch = _compiled_step(model, mcfg, step_spec, params, shapes["batch_size"],
                                                           seq_len, log, limit)
    out = dict(recipe=spec["recipe"], dtype=spec["dtype"], device=device.device_kind,
               devices=jax.local_device_count(), dim=mcfg.dim, batch_size=batch, config_batch_size=shapes["batch_size"],
               seq_len=seq_len, num_latent_refinements=mcfg.num_latent_refinements,
               num_refinement_blocks=mcfg.num_refinement_blocks, table_rows=mcfg.num_puzzle_identifiers)
    for _ in range(2):  # the first steps fill the slots and warm up
        state, carry, metrics = step(state, carry, fresh, key)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(shapes["steps"]):
        state, carry, metrics = step(state, carry, fresh, key)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - t0) / shapes["steps"]
    bc = BenchConfig.from_model(mcfg, seq_len, batch)
    flops = train_step_flops(bc)
    bf16, tf32 = (device_peak(device.device_kind, dtype) for dtype in ("bfloat16", "tf32"))
    out.update(step_ms=1e3 * step_s, steps_per_s=1 / step_s, tokens_per_sec=batch * seq_len / step_s,
               step_gflop=flops / 1e9, achieved_tflops=flops / step_s / 1e12,
               mfu_bf16_peak=flops / step_s / bf16 if bf16 else None,
               mfu_tf32_peak=flops / step_s / tf32 if tf32 and spec["dtype"] == "float32" else None,
               loss=float(np.asarray(metrics["loss"]).ravel()[0]) / batch)
    mfu = "" if out["mfu_bf16_peak"] is None else f", MFU {100 * out['mfu_bf16_peak']:.1f}% of the bf16 dense peak"
    if out["mfu_tf32_peak"] is not None:
        mfu += f" ({100 * out['mfu_tf32_peak']:.1f}% of TF32's)"
    log(f"train step {out['step_ms']:.1f} ms at batch {batch} ({out['steps_per_s']:.2f} steps/s, "
        f"{out['tokens_per_sec']:,.0f} tokens/s, {out['step_gflop']:,.1f} GFLOP/step, "
        f"{out['achieved_tflops']:.2f} TFLOP/s{mfu})")
    answer(dict(out, part="train"))  # kept if predict does not finish

    del state, carry, fresh, step  # predict needs the memory more than the train state
    data = _synthetic(mcfg, batch, seq_len, seed=1)
    ids = data["puzzle_ids"] if model.has_puzzle_emb else None
    run = lambda: jax.block_until_ready(predict(model, params, data["inputs"], puzzle_ids=ids,  # noqa: E731
                                                halt_threshold=2.0, max_recursion_depth=shapes["predict_steps"]))
    t0 = time.perf_counter()
    run()
    out["predict_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    pflops = predict_flops(bc, shapes["predict_steps"])
    out.update(predict_s=seconds, predict_puzzles_per_s=batch / seconds, predict_tflops=pflops / seconds / 1e12,
               predict_mfu_bf16_peak=pflops / seconds / bf16 if bf16 else None)
    stats = device.memory_stats() or {}
    out["peak_memory_gb"] = stats.get("peak_bytes_in_use", 0) / 2 ** 30 or None
    mfu = "" if out["predict_mfu_bf16_peak"] is None else f", MFU {100 * out['predict_mfu_bf16_peak']:.1f}% (bf16 peak)"
    log(f"predict {shapes['predict_steps']} steps x {batch} puzzles: {seconds:.3f} s ({out['predict_puzzles_per_s']:,.0f} "
        f"puzzles/s{mfu}; first call incl. compile {out['predict_first_s']:.1f} s); peak device memory "
        f"{out['peak_memory_gb'] or 0:.1f} GB")
    return dict(out, part="all")


def _run_part(spec: dict, timeout: float) -> dict:
    """Run `measure(spec)` in a fresh process, its lines printed as they come, killed after `timeout` seconds:
    its result, or the last one it reported (train only, if predict did not finish) with "error" saying why."""
    def show(line: str) -> None:
        if line.startswith("["):
            print(line, end="", flush=True)

    try:
        return run_worker("benchmarks.gpu_suite:measure", spec, worker_env(), timeout, on_line=show)
    except WorkerError as e:
        lines = e.output.splitlines()
        err = next((t for t in reversed(lines) if "Error" in t or "error" in t), lines[-1] if lines else "")
        result = dict(e.partial, recipe=spec["recipe"], dtype=spec["dtype"], error=f"{e.reason}: {err}"[:400])
        print(f"[{spec['recipe']} {spec['dtype']}] FAILED ({result['error']})", flush=True)
        return result


def _summary(results: list) -> None:
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    print(f"\n{'recipe':<20s}{'dtype':<10s}{'batch':>6s}{'step ms':>9s}{'tokens/s':>12s}{'TFLOP/s':>9s}{'MFU bf16':>10s}"
          f"{'MFU tf32':>10s}{'predict puzzles/s':>19s}{'mem GB':>8s}")
    for r in results:
        print(f"{r['recipe']:<20s}{r['dtype']:<10s}{fmt(r.get('batch_size'), '{}'):>6s}"
              f"{fmt(r.get('step_ms'), '{:.1f}'):>9s}"
              f"{fmt(r.get('tokens_per_sec'), '{:,.0f}'):>12s}{fmt(r.get('achieved_tflops'), '{:.1f}'):>9s}"
              f"{fmt(r.get('mfu_bf16_peak') and 100 * r['mfu_bf16_peak'], '{:.1f}%'):>10s}"
              f"{fmt(r.get('mfu_tf32_peak') and 100 * r['mfu_tf32_peak'], '{:.1f}%'):>10s}"
              f"{fmt(r.get('predict_puzzles_per_s'), '{:,.0f}'):>19s}{fmt(r.get('peak_memory_gb'), '{:.1f}'):>8s}"
              + (f"  ({r['error'][:60]})" if r.get("error") else ""))
    print("MFU: model FLOPs (matmuls, benchmarks.flops) per second over the device's dense peak (vendor data "
          "sheets, benchmarks.flops.PEAK_TFLOPS): bfloat16, and TF32 for float32 steps (XLA's default float32 "
          "matmul path on GPUs)")


def main(argv=None, quick_shapes: Optional[dict] = None) -> list:
    """The suite; `quick_shapes` replaces entries of QUICK under --quick (tests shrink the shapes further)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes (any device; checks the code path)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list of {', '.join(RECIPES)}")
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of bfloat16, float32 (run in this order)")
    ap.add_argument("--budget-s", type=float, default=225.0, help="total seconds; no part starts without "
                                                                  "--min-part-s of it left (default 225)")
    ap.add_argument("--part-s", type=float, default=100.0, help="most seconds one part may take (default 100)")
    ap.add_argument("--min-part-s", type=float, default=30.0)
    ap.add_argument("--memory-limit-gb", type=float, default=None,
                    help="device memory to fit the train step in (default: the device's own limit)")
    ap.add_argument("--json", help="write the results to this path")
    args = ap.parse_args(argv)
    t_end = time.monotonic() + args.budget_s
    recipes = [r for r in args.recipes.split(",") if r]
    dtypes = [d for d in args.dtypes.split(",") if d]
    bad = sorted(set(recipes) - set(RECIPES)) + sorted(set(dtypes) - set(DTYPES))
    if bad:
        raise SystemExit(f"unknown recipe/dtype {bad}: recipes {RECIPES}, dtypes {DTYPES}")
    print(f"GPU suite: {', '.join(recipes)} x {', '.join(dtypes)}; budget {args.budget_s:.0f} s"
          + (" (quick: tiny shapes)" if args.quick else ""), flush=True)
    results = []
    for dtype in dtypes:  # the recipes' own dtype (bfloat16) first
        for recipe in recipes:
            left = t_end - time.monotonic()
            if left < args.min_part_s:
                results.append(dict(recipe=recipe, dtype=dtype, error=f"skipped: {left:.0f} s of the budget left"))
                print(f"[{recipe} {dtype}] skipped ({left:.0f} s of the budget left)", flush=True)
                continue
            spec = dict(recipe=recipe, dtype=dtype, quick=args.quick, quick_shapes=quick_shapes,
                        memory_limit_gb=args.memory_limit_gb)
            try:
                results.append(_run_part(spec, min(args.part_s, left)))
            except Exception as e:  # noqa: BLE001 (the suite goes on whatever one part does)
                results.append(dict(recipe=recipe, dtype=dtype, error=f"{type(e).__name__}: {e}"[:400]))
                print(f"[{recipe} {dtype}] FAILED ({results[-1]['error']})", flush=True)
    _summary(results)
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
