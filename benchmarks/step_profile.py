"""Where a train step's time goes: per-op times of trm_jax's compiled step (XLA's profiler trace) and
of the PyPI package's PyTorch step (torch.profiler), grouped by kind and by phase.

    python -m benchmarks.step_profile [--dim 64 --num-latent-refinements 2 --num-refinement-blocks 2] [--steps 5]

Same step as `scripts/benchmark.py model` times (benchmarks.jax_step / torch_reference), each
framework in its own worker process pinned to `--threads` CPUs, one after the other, `--steps`
profiled steps after warm-up steps.

trm_jax: XLA:CPU runs the compiled step as a graph of thunks (one per fused kernel, matmul, copy or
loop), on up to `--threads` threads at once; the profiler records each thunk's time. Each thunk is
classified from the optimized HLO: its kind (matmul when its fusion holds a dot, GELU when it holds
the erf, LayerNorm when it reduces and takes a reciprocal square root, reduction, layout copy,
elementwise, loop control = a while loop's own time outside its body) and its phase from the op's
JAX name (no-gradient cycles, gradient cycle forward, backward, optimizer). Shares are of the summed
thunk time; with 2 threads that sum is up to twice the wall time.
PyTorch: each op's self time (its time minus that of the ops it called) on the calling thread, by
aten op name; shares are of the summed self time, about the step's wall time.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import tempfile
import time

import numpy as np

from benchmarks.harness import (BenchConfig, add_config_arguments, config_from_args, run_worker, worker_env,
                                write_json)
from benchmarks.jax_step import build_jax
from benchmarks.torch_reference import build_torch, torch_train_step

DEFAULT = BenchConfig(dim=64, num_latent_refinements=2, num_refinement_blocks=2)
KINDS = ("matmul", "GELU", "LayerNorm", "reduction", "elementwise", "layout copy", "loop control", "other")


# ------------------------------------------------------------------------------------------- HLO

def _split_instruction(line: str):
    """(name, shape, opcode, rest) of an HLO instruction line, or None."""
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
    if not m:
        return None
    rest, depth, i = line[m.end():], 0, 0
    if rest.startswith("("):  # a tuple shape: skip to its closing parenthesis
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        shape, rest = rest[:i + 1], rest[i + 1:].lstrip()
    else:
        shape, _, rest = rest.partition(" ")
    op = re.match(r"([\w\-]+)\(", rest)
    return (m.group(1), shape, op.group(1), rest) if op else None


def _dims(shape: str) -> list:
    return [int(d) for d in re.findall(r"\d+", shape.split("{")[0].split("[", 1)[1])] if "[" in shape else []


def _dot_flops(shape: str, rest: str, shapes: dict) -> float:
    """2 x output elements x contracted size of a dot instruction (its lhs operand's shape from `shapes`)."""
    lhs = re.match(r"dot\(%?([\w.\-]+)", rest)
    contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
    if not (lhs and contracting and lhs.group(1) in shapes):
        return 0.0
    lhs_dims = _dims(shapes[lhs.group(1)])
    k = float(np.prod([lhs_dims[int(i)] for i in contracting.group(1).split(",") if i]))
    return 2.0 * float(np.prod(_dims(shape))) * k


def parse_hlo(text: str) -> dict:
    """{instruction name: {opcode, shape, calls, fused (its fused computation's opcodes), op_name,
    dot_flops (of the dot it is, or of the dots its fused computation holds)}} of an HLO module."""
    computations: dict = {}  # name -> [instruction names]
    out, current = {}, None
    for line in text.splitlines():
        head = re.match(r"(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head and not line.startswith(" "):
            current = computations.setdefault(head.group(1), [])
            continue
        inst = _split_instruction(line)
        if inst is None:
            continue
        name, shape, opcode, rest = inst
        if current is not None:
            current.append(name)
        calls = re.search(r"calls=%?([\w.\-]+)", rest)
        op_name = re.search(r'op_name="([^"]*)"', rest)
        out[name] = dict(opcode=opcode, shape=shape, calls=calls.group(1) if calls else None,
                         op_name=op_name.group(1) if op_name else "", rest=rest)
    shapes = {name: info["shape"] for name, info in out.items()}
    own = {name: _dot_flops(info["shape"], info["rest"], shapes) if info["opcode"] == "dot" else 0.0
           for name, info in out.items()}
    for name, info in out.items():
        members = computations.get(info["calls"], ()) if info["calls"] else ()
        info["fused"] = {out[m]["opcode"] for m in members}
        info["dot_flops"] = own[name] + sum(own[m] for m in members)
        del info["rest"]
    return out


def hlo_kind(info: dict) -> str:
    """The kind (one of KINDS) of an HLO instruction, from its opcode and its fusion's contents."""
    ops = info["fused"] | {info["opcode"]}
    if ops & {"dot", "convolution"} or (info["opcode"] == "custom-call" and "matmul" in info["op_name"].lower()):
        return "matmul"
    if info["opcode"] in ("while", "conditional", "call"):
        return "loop control"
    if "erf" in ops:
        return "GELU"
    if "reduce" in ops and "rsqrt" in ops:
        return "LayerNorm"
    if "reduce" in ops:
        return "reduction"
    if info["opcode"] in ("copy", "transpose") or (info["fused"] and info["fused"] <= {
            "parameter", "copy", "transpose", "bitcast", "reshape", "broadcast"}):
        return "layout copy"
    if info["opcode"] == "fusion" or ops & {"add", "multiply", "select", "subtract", "divide", "exponential"}:
        return "elementwise"
    return "other"


def hlo_phase(op_name: str) -> str:
    """The train-step phase of an op from its JAX name: backward (transpose of the JVP), the gradient
    cycle's forward (under jax.checkpoint / remat), the no-gradient cycles and heads (the rest of the
    JVP), or the optimizer (outside the differentiated function)."""
    if "transpose(jvp(" in op_name:
        return "backward"
    if "jvp(" in op_name:
        return "forward, gradient cycle" if "checkpoint" in op_name or "remat" in op_name else "forward, no-grad + heads"
    return "optimizer + loss" if op_name else "other"


# ---------------------------------------------------------------------------------- JAX worker

def self_times(events: list) -> dict:
    """{thunk name: summed self time (us)} from complete events of one thread (children subtracted)."""
    out: dict = collections.defaultdict(float)
    stack: list = []
    for e in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        while stack and e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"] - 1e-3:
            stack.pop()
        if stack:
            out[stack[-1]["name"]] -= e["dur"]
        out[e["name"]] += e["dur"]
        stack.append(e)
    return out


def profile_jax(spec: dict) -> dict:
    """Worker entry: trace `steps` train steps; per-thunk self time per step with kind, phase and shape."""
    import jax

    bc, steps = BenchConfig(**spec["config"]), spec["steps"]
    model, params, opt_state, step, tokens, labels, carry = build_jax(bc)
    hlo = parse_hlo(step.lower(params, opt_state, carry, tokens, labels).compile().as_text())
    for _ in range(spec["warmup"]):
        params, opt_state, carry, loss = step(params, opt_state, carry, tokens, labels)
    loss.block_until_ready()
    with tempfile.TemporaryDirectory(prefix="trm_jax_step_profile_") as tmp:
        t = time.perf_counter()
        with jax.profiler.trace(tmp):
            for _ in range(steps):
                params, opt_state, carry, loss = step(params, opt_state, carry, tokens, labels)
                loss.block_until_ready()
        wall = (time.perf_counter() - t) / steps
        with gzip.open(glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)[0]) as f:
            events = json.load(f)["traceEvents"]
    threads = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("name") in hlo:
            threads[(e["pid"], e["tid"])].append(e)
    times, calls = collections.defaultdict(float), collections.Counter()
    for evs in threads.values():
        calls.update(e["name"] for e in evs)
        for name, us in self_times(evs).items():
            times[name] += us
    ops = [dict(name=name, kind=hlo_kind(hlo[name]), phase=hlo_phase(hlo[name]["op_name"]),
                detail=f"{hlo[name]['opcode']} {hlo[name]['shape']}", ms=us / 1e3 / steps, calls=calls[name] / steps,
                gflop=hlo[name]["dot_flops"] * calls[name] / steps / 1e9)
           for name, us in times.items()]
    return dict(framework="trm_jax", wall_ms=1e3 * wall, threads_used=len(threads), ops=ops)


# ------------------------------------------------------------------------------ PyTorch worker

TORCH_KINDS = {"matmul": ("mm", "addmm", "bmm", "matmul", "linear", "conv", "mkldnn_convolution", "baddbmm"),
               "GELU": ("gelu",), "LayerNorm": ("layer_norm",),
               "reduction": ("sum", "mean", "max", "reduce", "argmax", "all"),
               "layout copy": ("copy_", "clone", "contiguous", "permute", "transpose", "t", "reshape", "view",
                               "as_strided", "_unsafe_view", "expand", "squeeze", "unsqueeze", "cat", "stack")}


def torch_kind(op: str) -> str:
    base = op.split("::")[-1].lstrip("_")
    for kind, names in TORCH_KINDS.items():
        if any(base == n or base.startswith(n + "_") or base.endswith("_" + n) for n in names):
            return kind
    if "convolution" in base:
        return "matmul"
    return "elementwise" if op.startswith("aten::") else "other"


def profile_torch(spec: dict) -> dict:
    """Worker entry: torch.profiler over `steps` train steps; each op's self time per step by phase."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    bc, steps = BenchConfig(**spec["config"]), spec["steps"]
    torch.set_num_threads(spec["threads"])
    model, opt, seq, labels = build_torch(bc)
    y, z = model.get_initial()
    for _ in range(spec["warmup"]):
        y, z = torch_train_step(model, opt, seq, labels, y, z)

    def step(y, z):
        with record_function("phase:forward"):
            loss, _, y, z, _, _ = model(seq, y, z, labels=labels)
        with record_function("phase:backward"):
            loss.backward()
        with record_function("phase:optimizer + loss"):
            opt.step()
            opt.zero_grad()
        return y, z

    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            y, z = step(y, z)
    wall = (time.perf_counter() - t) / steps
    # phase of each op: the innermost phase range around it (autograd ops run inside phase:backward)
    ranges = [(e.time_range.start, e.time_range.end, e.name.split(":", 1)[1]) for e in prof.events()
              if e.name.startswith("phase:")]
    times = collections.defaultdict(float)
    for e in prof.events():
        if e.name.startswith("phase:") or e.name.startswith("ProfilerStep"):
            continue
        phase = next((p for s, t_end, p in ranges if s <= e.time_range.start < t_end), "other")
        times[(e.name, phase)] += e.self_cpu_time_total
    ops = [dict(name=name, kind=torch_kind(name), phase=phase, detail="", ms=us / 1e3 / steps)
           for (name, phase), us in times.items() if us > 0]
    return dict(framework="PyTorch", wall_ms=1e3 * wall, threads_used=1, ops=ops)


# ---------------------------------------------------------------------------------------- report

def grouped(ops: list, key: str) -> list:
    """[(group, ms, share)] summed over `key` ("kind" or "phase"), largest first."""
    total = sum(o["ms"] for o in ops) or 1.0
    sums = collections.defaultdict(float)
    for o in ops:
        sums[o[key]] += o["ms"]
    return sorted(((k, v, v / total) for k, v in sums.items()), key=lambda r: -r[1])


def report(res: dict, top: int) -> None:
    for run in res["runs"]:
        total = sum(o["ms"] for o in run["ops"])
        print(f"\n{run['framework']}: {run['wall_ms']:.1f} ms per step (wall, profiler on); "
              f"op time summed {total:.1f} ms per step")
        for key in ("kind", "phase"):
            print(f"  by {key}: " + ", ".join(f"{k} {100 * s:.0f}% ({v:.1f} ms)" for k, v, s in grouped(run["ops"], key)))
        mm = [o for o in run["ops"] if o.get("gflop")]
        if mm:
            gflop, ms = sum(o["gflop"] for o in mm), sum(o["ms"] for o in mm)
            print(f"  matmul thunks: {gflop:.2f} GFLOP per step in {ms:.1f} ms ({gflop / ms * 1e3:.0f} GFLOP/s)")
        print(f"  top {top} ops (ms per step, calls per step, GFLOP/s of matmuls):")
        for o in sorted(run["ops"], key=lambda o: -o["ms"])[:top]:
            rate = f"{o['gflop'] / o['ms'] * 1e3:5.0f}" if o.get("gflop") else "     "
            calls = f"{o['calls']:4.0f}x" if o.get("calls") else "     "
            print(f"    {o['ms']:8.2f} ms {100 * o['ms'] / total:5.1f}% {calls} {rate}  {o['kind']:<12s} "
                  f"{o['phase']:<26s} {o['name']} {o['detail']}"[:170])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(ap, DEFAULT, ("dim", "depth", "num_latent_refinements", "num_refinement_blocks",
                                       "batch_size", "remat", "threads"))
    ap.add_argument("--steps", type=int, default=5, help="profiled steps per framework")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=12, help="ops listed per framework")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", help="write the per-op results to this path")
    args = ap.parse_args(argv)
    bc = config_from_args(args, DEFAULT)
    spec = dict(config=dataclasses.asdict(bc), steps=args.steps, warmup=args.warmup, threads=bc.threads)
    env = worker_env()
    print(f"step profile: {bc.label()}, {bc.threads} threads, load average {os.getloadavg()[0]:.2f}")
    runs = [run_worker("benchmarks.step_profile:profile_jax", spec, env, timeout=1800)]
    if not args.no_torch:
        runs.append(run_worker("benchmarks.step_profile:profile_torch", spec, env, timeout=1800))
    res = dict(config=dataclasses.asdict(bc), runs=runs)
    report(res, args.top)
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
