"""Model benchmarks: trm_jax against the PyPI `tiny-recursive-model` (PyTorch) at the same architecture
and the same work, measured in the same run, with ratios.

    python scripts/benchmark.py model                      # reference configuration (minutes)
    python scripts/benchmark.py model --quick              # small configuration (about a minute)
    python scripts/benchmark.py model --suite              # reference + transformer + dim=512
    python scripts/benchmark.py model --num-latent-refinements 2 --num-refinement-blocks 2 --widths 64,128,256

What is measured (each part can be chosen with --parts):
- train:   one training supervision step = forward (T-1 no-grad cycles + 1 gradient cycle + heads +
           loss) + backward + AdamW. JAX: one jitted function with donated params/opt state/carry.
           PyTorch: `TinyRecursiveModel.forward(labels=...)`, `loss.backward()`, `AdamW.step()`.
           Each framework runs in its own worker process (its own allocator and thread pools, pinned
           to the same `--threads` CPUs); the frameworks take turns in blocks of back-to-back steps,
           twice (see `time_frameworks`). The best of `--iters` steps is reported for each (wall
           clock) together with the process CPU time of that step.
- predict: `predict` with halting disabled (threshold 2.0) for `--predict-steps` supervision steps.
- peak:    a 2048x2048 float32 matmul in XLA (and in PyTorch), best of several, measured in each
           worker before, between and after the parts above; MFU = analytic FLOPs of a step / step
           time / the best XLA peak.
- floor:   every matmul of one network application (`net_matmuls`) and the two products of its
           backward pass, each timed alone in XLA at its shape; summed over a step this is the
           step's matmul-only floor (no elementwise work, no overheads), and PyTorch's time over it
           the best ratio trm_jax could reach with XLA's kernels.
- compile: trace + lower + compile of the JAX train step in a fresh process, at (n, T), (2n, T) and
           (n, 2T) (n = num_latent_refinements, T = num_refinement_blocks).
- memory:  peak resident memory of one training step above the resident memory before it, in a
           fresh process per configuration: the kernel's high-water mark is reset
           (/proc/self/clear_refs) after a warm-up step, the step runs, and VmHWM - VmRSS(before)
           is the step's peak working memory (activations, gradients, temporaries) on top of
           params/optimizer state. Same method for both frameworks, both run with
           MALLOC_MMAP_THRESHOLD_=131072 so that every buffer of 128 KiB or more is its own mapping,
           returned to the OS when freed (otherwise glibc recycles the previous step's heap memory
           for PyTorch's many mid-sized tensors and the RSS delta undercounts them, while XLA's one
           large temp buffer is always counted). For JAX the compiled executable's temp buffer size
           (XLA memory analysis) is printed too.

FLOPs are counted analytically (matmuls only, 2 FLOP per multiply-add; see `net_flops`) and
checked against XLA's cost analysis of one network application.

Each framework runs in worker processes (`benchmarks.model_workers`); this module is the `model` subcommand
of scripts/benchmark.py: its arguments, the runs, and the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Optional

from benchmarks.flops import jax_net_cost_flops, net_flops, predict_flops, train_step_flops
from benchmarks.harness import (BenchConfig, add_config_arguments, add_malloc_hugepages_argument, config_from_args,
                                run_worker, worker_env)
from benchmarks.model_workers import COMPILE_STEP, TORCH_MEMORY, time_frameworks

REFERENCE = BenchConfig()
QUICK = BenchConfig(dim=64, batch_size=16, num_latent_refinements=2, num_refinement_blocks=2)
ARCHITECTURE = ("network", "dim", "depth", "seq_len", "num_tokens", "num_latent_refinements", "num_refinement_blocks",
                "batch_size", "num_heads", "gelu_approximate", "remat", "dtype", "threads")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, REFERENCE, ARCHITECTURE)
    p.add_argument("--iters", type=int, default=6, help="timed training steps per framework (default 6)")
    p.add_argument("--predict-steps", type=int, default=16, help="supervision steps in predict (default 16)")
    p.add_argument("--predict-iters", type=int, default=2, help="timed predict calls per framework (default 2)")
    p.add_argument("--parts", default=None,
                   help="comma list of train,predict,compile,memory (default all; train,predict with --widths)")
    p.add_argument("--quick", action="store_true", help=f"small configuration ({QUICK.label()}; options given "
                                                       "change it)")
    p.add_argument("--suite", action="store_true",
                   help="the reference configuration, the transformer network, and dim=512")
    p.add_argument("--widths", default=None, metavar="D1,D2,...",
                   help="train step and predict at each of these model widths (dim) in one run, with a summary "
                        "of the ratios and the targets (train,predict parts only unless --parts says more)")
    p.add_argument("--no-torch", action="store_true", help="trm_jax only")
    p.add_argument("--xla-flags", default=None, help="XLA_FLAGS for the workers (default: inherited)")
    add_malloc_hugepages_argument(p)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")


MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _env(args, memory: bool = False) -> dict:
    return worker_env(args.malloc_hugepages, args.xla_flags, **(MEMORY_ENV if memory else {}))


def _best(samples):
    """(wall, cpu) of the fastest sample (by wall clock)."""
    return min(samples, key=lambda s: s[0]) if samples else None


def bench_one(bc: BenchConfig, args, parts: set[str], scaling: bool = True) -> dict:
    env = _env(args)
    use_torch = not args.no_torch
    if use_torch:
        try:
            import tiny_recursive_model  # noqa: F401
            import torch  # noqa: F401
        except ImportError:
            print("torch / tiny-recursive-model not installed (pip install 'trm_jax[torch]'): trm_jax only")
            use_torch = False
    out: dict = {"config": dataclasses.asdict(bc), "label": bc.label(), "threads": bc.threads,
                 "train_gflop": train_step_flops(bc) / 1e9,
                 "predict_gflop": predict_flops(bc, args.predict_steps) / 1e9,
                 "net_gflop_analytic": net_flops(bc) / 1e9}
    print(f"\n== {bc.label()}, {bc.threads} threads", flush=True)
    base = {"config": dataclasses.asdict(bc), "threads": bc.threads}
    if parts & {"train", "predict"}:
        t0 = time.perf_counter()
        out["time"] = time_frameworks({**base, "iters": args.iters, "predict_iters": args.predict_iters,
                                       "predict_steps": args.predict_steps, "parts": sorted(parts),
                                       "torch": use_torch}, env, args.timeout)
        print(f"   timings done in {time.perf_counter() - t0:.0f} s", flush=True)
    if parts & {"compile", "memory"}:
        # the reference configuration last: the first worker process pays for cold file caches, which
        # should not flatter the growth with n and T
        n, T, runs = bc.num_latent_refinements, bc.num_refinement_blocks, []
        if scaling and "compile" in parts:
            runs += [("2n", dataclasses.replace(bc, num_latent_refinements=2 * n)),
                     ("2T", dataclasses.replace(bc, num_refinement_blocks=2 * T))]
        if scaling and "memory" in parts:
            runs += [("T2", dataclasses.replace(bc, num_refinement_blocks=2))] if T != 2 else []
        runs.append(("ref", bc))
        out["compile"] = {}
        for name, c in runs:
            run = "memory" in parts and name in ("ref", "2T", "T2")
            out["compile"][name] = run_worker(COMPILE_STEP, {"config": dataclasses.asdict(c), "threads": c.threads,
                                                          "run": run}, _env(args, memory=run), args.timeout)
            out["compile"][name].update(num_refinement_blocks=c.num_refinement_blocks,
                                        num_latent_refinements=c.num_latent_refinements)
        if "memory" in parts and use_torch:
            out["torch_memory"] = run_worker(TORCH_MEMORY, base, _env(args, memory=True), args.timeout)
    try:
        out["net_gflop_xla"] = (jax_net_cost_flops(bc) or 0) / 1e9
    except Exception:
        out["net_gflop_xla"] = None
    _report(out, args)
    return out


def _fmt_ratio(ours, ref):
    return f"{ref / ours:.2f}x" if ours and ref else "-"


def _report(r: dict, args) -> None:
    rows = []
    t = r.get("time", {})
    peak = max((p.get("jax", 0) for p in t.get("peak", [])), default=0)
    tpeak = max((p.get("torch", 0) for p in t.get("peak", [])), default=0)
    rows.append(("matmul peak 2048^2 f32 (GFLOP/s)", f"{peak:.0f}" if peak else "-",
                 f"{tpeak:.0f}" if tpeak else "-", ""))
    floors = {}
    if "net_matmuls" in t:  # every matmul of the work at the speed it reaches alone, nothing else
        nm, c = t["net_matmuls"], r["config"]
        n, T = c["num_latent_refinements"], c["num_refinement_blocks"]
        floors = {"train": (T * (n + 1) * nm["forward_ms"] + (n + 1) * nm["backward_ms"]) / 1e3,
                  "predict": args.predict_steps * T * (n + 1) * nm["forward_ms"] / 1e3}
    for key, label, flop in (("train", "train step (s)", r["train_gflop"]),
                             ("predict", f"predict, {args.predict_steps} steps (s)", r["predict_gflop"])):
        j, p = _best(t.get("jax_" + key, [])), _best(t.get("torch_" + key, []))
        if j:
            rows.append((label + " wall", f"{j[0]:.2f}", f"{p[0]:.2f}" if p else "-",
                         _fmt_ratio(j[0], p[0] if p else None)))
            rows.append((label + " cpu", f"{j[1]:.2f}", f"{p[1]:.2f}" if p else "-",
                         _fmt_ratio(j[1], p[1] if p else None)))
            mfu_j = flop / j[0] / peak if peak else 0
            mfu_p = flop / p[0] / peak if (peak and p) else 0
            rows.append((f"  {flop:.0f} GFLOP: GFLOP/s (% of XLA peak)", f"{flop / j[0]:.0f} ({100 * mfu_j:.0f}%)",
                         f"{flop / p[0]:.0f} ({100 * mfu_p:.0f}%)" if p else "-", ""))
            if key in floors:  # ratio column: the best ratio trm_jax could reach with these kernels
                rows.append(("  matmul-only floor (s), XLA kernels", f"{floors[key]:.2f}", "-",
                             f"<={_fmt_ratio(floors[key], p[0])}" if p else ""))
    if "jax_train_first_s" in t:
        rows.append(("first train step incl. compile (s)", f"{t['jax_train_first_s']:.1f}", "-", ""))
    comp = {k: r["compile"][k] for k in ("ref", "2n", "2T", "T2") if k in r.get("compile", {})}
    nt = {name: f"n={c['num_latent_refinements']} T={c['num_refinement_blocks']}" for name, c in comp.items()}
    for name, c in comp.items():
        tag = {"ref": "", "2n": " (2n)", "2T": " (2T)", "T2": " (T=2)"}[name]
        rows.append((f"compile {nt[name]}{tag} (s) wall/cpu",
                     f"{c['lower_s'] + c['compile_s']:.1f}/{c['lower_cpu_s'] + c['compile_cpu_s']:.1f}", "-", ""))
    for name, c in comp.items():
        if c.get("peak_mb") is not None:
            ref = r.get("torch_memory", {}).get("peak_mb") if name == "ref" else None
            rows.append((f"step peak memory {nt[name]} (MB)", f"{c['peak_mb']:.0f}",
                         f"{ref:.0f}" if ref else "-", _fmt_ratio(c["peak_mb"], ref) if ref else ""))
        if c.get("xla_temp_mb") is not None:
            rows.append((f"  XLA temp buffer {nt[name]} (MB)", f"{c['xla_temp_mb']:.0f}", "-", ""))
    if "ref" in comp:
        tot = lambda c: c["lower_s"] + c["compile_s"]  # noqa: E731
        for name in ("2n", "2T"):
            if name in comp:
                rows.append((f"compile growth {name} vs ref", f"{100 * (tot(comp[name]) / tot(comp['ref']) - 1):+.0f}%",
                             "-", ""))
    lo, hi = comp.get("T2", {}).get("peak_mb"), comp.get("2T", {}).get("peak_mb")
    if lo and hi:
        rows.append((f"step peak memory T={comp['2T']['num_refinement_blocks']} vs T=2", f"{100 * (hi / lo - 1):+.0f}%",
                     "-", ""))
    width = max(len(x[0]) for x in rows) + 2
    print(f"{'':{width}s}{'trm_jax':>16s}{'PyTorch':>16s}{'ratio':>9s}")
    for name, a, b, c in rows:
        print(f"{name:{width}s}{a:>16s}{b:>16s}{c:>9s}")
    xla = r.get("net_gflop_xla")
    print(f"FLOPs: one network application {r['net_gflop_analytic']:.2f} GFLOP analytic (matmuls), "
          f"{xla:.2f} GFLOP XLA cost analysis (incl. elementwise)" if xla else "")
    if floors:
        print("matmul-only floor: the step's forward and backward matmuls, each timed alone in XLA at its "
              "shape, summed (no elementwise work, no overheads)")
    print("ratio = PyTorch / trm_jax (> 1: trm_jax faster or smaller); times are the best of the timed "
          "iterations, one worker process per framework taking turns in blocks of back-to-back steps (ABAB)")


# Train-step ratio (PyTorch / trm_jax) the mixer should reach at n=2..3, T=2, by width (docs/performance.md,
# "Small widths")
TRAIN_STEP_TARGETS = {64: 1.5, 128: 1.5, 256: 2.61}


def _ratio(r: dict, part: str) -> Optional[float]:
    t = r.get("time", {})
    j, p = _best(t.get("jax_" + part, [])), _best(t.get("torch_" + part, []))
    return p[0] / j[0] if j and p else None


def width_summary(results: dict, bc: BenchConfig) -> list[dict]:
    """One row per width: best train-step and predict times of both frameworks, their ratios and the target."""
    rows = []
    for width, r in results.items():
        t = r.get("time", {})
        best = {k: _best(t.get(k, [])) for k in ("jax_train", "torch_train", "jax_predict", "torch_predict")}
        stated = bc.network == "mixer" and bc.num_refinement_blocks == 2 and bc.num_latent_refinements in (2, 3)
        target = TRAIN_STEP_TARGETS.get(width) if stated else None
        ratio = _ratio(r, "train")
        rows.append(dict(dim=width, **{k: v[0] if v else None for k, v in best.items()}, train_ratio=ratio,
                         predict_ratio=_ratio(r, "predict"), target=target,
                         met=None if target is None or ratio is None else ratio >= target))
    return rows


def _print_width_summary(rows: list[dict], bc: BenchConfig) -> None:
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    print(f"\n== summary: {bc.network}, n={bc.num_latent_refinements} T={bc.num_refinement_blocks} "
          f"batch={bc.batch_size}; ratio = PyTorch / trm_jax, best of "
          "the timed steps, both frameworks in this run")
    print(f"{'dim':>5s}{'train trm_jax':>15s}{'PyTorch':>10s}{'ratio':>8s}{'target':>9s}{'':>9s}"
          f"{'predict trm_jax':>17s}{'PyTorch':>10s}{'ratio':>8s}")
    for r in rows:
        met = "" if r["met"] is None else ("met" if r["met"] else "not met")
        print(f"{r['dim']:5d}{fmt(r['jax_train'], '{:.3f} s'):>15s}{fmt(r['torch_train'], '{:.3f} s'):>10s}"
              f"{fmt(r['train_ratio'], '{:.2f}x'):>8s}{fmt(r['target'], '>={:.2f}x'):>9s}{met:>9s}"
              f"{fmt(r['jax_predict'], '{:.3f} s'):>17s}{fmt(r['torch_predict'], '{:.3f} s'):>10s}"
              f"{fmt(r['predict_ratio'], '{:.2f}x'):>8s}")


def bench_model(args: argparse.Namespace) -> dict:
    default_parts = "train,predict" if args.widths else "train,predict,compile,memory"
    parts = {p.strip() for p in (args.parts or default_parts).split(",") if p.strip()}
    bad = parts - {"train", "predict", "compile", "memory"}
    if bad:
        raise SystemExit(f"--parts: unknown {sorted(bad)}; choose from train,predict,compile,memory")
    bc = config_from_args(args, REFERENCE, QUICK)
    print(f"model benchmark: trm_jax vs tiny-recursive-model; {os.cpu_count()} CPUs; "
          f"XLA_FLAGS={_env(args).get('XLA_FLAGS', '')!r}; malloc hugepages {'on' if args.malloc_hugepages else 'off'}; "
          f"1-minute load average {os.getloadavg()[0]:.2f}")
    if args.widths:
        try:
            widths = [int(w) for w in args.widths.split(",") if w.strip()]
        except ValueError:
            raise SystemExit(f"--widths: comma-separated integers, got {args.widths!r}") from None
        if not widths or min(widths) < 1:
            raise SystemExit(f"--widths: positive model widths, got {args.widths!r}")
        per_width = {w: bench_one(dataclasses.replace(bc, dim=w), args, parts, scaling=False) for w in widths}
        rows = width_summary(per_width, bc)
        _print_width_summary(rows, bc)
        return {"widths": {str(w): r for w, r in per_width.items()}, "summary": rows}
    results = {"reference": bench_one(bc, args, parts)}
    if args.suite:
        results["transformer"] = bench_one(dataclasses.replace(bc, network="transformer"), args, parts,
                                           scaling=False)
        results["dim512"] = bench_one(dataclasses.replace(bc, dim=2 * bc.dim), args, parts - {"predict"},
                                      scaling=False)
    return results
