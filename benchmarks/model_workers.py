"""The model benchmark's worker processes (one per framework) and the driver that times them in turns.

Worker entries (`benchmarks.harness.run_worker` / `WorkerServer`, by their "module:function" names
below): `session` (a timing server: train, predict, peak, net_matmuls), `compile_step` (trace, lower and compile time, XLA
memory analysis, peak RSS of a step) and `torch_memory` (peak RSS of a PyTorch step). JAX and
torch are imported inside the functions: a PyTorch worker process must not load JAX's thread pools.
"""

from __future__ import annotations

import gc
import time
from typing import Optional

from benchmarks.harness import BenchConfig, WorkerServer, timed
from benchmarks.jax_step import build_jax
from benchmarks.kernels import matmul_peak, net_matmul_times
from benchmarks.torch_reference import build_torch, torch_train_step

SESSION = "benchmarks.model_workers:session"
COMPILE_STEP = "benchmarks.model_workers:compile_step"
TORCH_MEMORY = "benchmarks.model_workers:torch_memory"


def _rss_kb() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _step_peak_mb(run_step) -> Optional[float]:
    """Peak RSS during run_step() above the RSS before it (MB), or None where it cannot be measured."""
    gc.collect()
    if not _reset_hwm():
        return None
    before, _ = _rss_kb()
    run_step()
    _, peak = _rss_kb()
    return (peak - before) / 1024


def _jax_session(bc: BenchConfig, spec: dict) -> dict:
    """Train step (jitted, donated state) and predict of trm_jax."""
    import jax

    from trm_jax.models import predict

    state_dict = None
    if spec["torch"]:  # same initial weights as the PyTorch worker (same seed); torch itself is not run here
        state_dict = build_torch(bc)[0].state_dict()
    model, params, opt_state, step, tokens, labels, carry = build_jax(bc, state_dict)
    state = {"params": params, "opt_state": opt_state, "carry": carry}

    def train():
        state["params"], state["opt_state"], state["carry"], loss = step(
            state["params"], state["opt_state"], state["carry"], tokens, labels)
        loss.block_until_ready()

    def run_predict(depth):  # threshold above 1: no sample halts before the last step
        jax.block_until_ready(predict(model, state["params"], tokens, halt_threshold=2.0, max_recursion_depth=depth))
    return {"train": train, "predict": run_predict}


def _torch_session(bc: BenchConfig, spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    model, opt, seq, labels = build_torch(bc)
    state = dict(zip("yz", model.get_initial()))

    def train():
        state["y"], state["z"] = torch_train_step(model, opt, seq, labels, state["y"], state["z"])

    def run_predict(depth):
        with torch.no_grad():
            model.predict(seq, halt_prob_thres=2.0, max_deep_refinement_steps=depth)
    return {"train": train, "predict": run_predict}


def session(spec: dict) -> dict:
    """`serve` entry: one framework's timing commands, each answering wall and CPU time (GFLOP/s for
    `peak`, with spec["peak_args"] as `matmul_peak`'s keywords if given; per-network matmul times for
    `net_matmuls`, JAX)."""
    bc, framework = BenchConfig(**spec["config"]), spec["framework"]
    s = (_jax_session if framework == "jax" else _torch_session)(bc, spec)
    return {"train": lambda: {"time": timed(s["train"])},
            "predict": lambda: {"time": timed(lambda: s["predict"](spec["predict_steps"]))},
            "peak": lambda: {"gflops": matmul_peak(framework, **spec.get("peak_args", {}))},
            "net_matmuls": lambda: net_matmul_times(bc)}


def compile_step(spec: dict) -> dict:
    """`run` entry: trace+lower and compile time of the JAX train step, its XLA memory analysis, and
    (with spec["run"]) the peak RSS of one executed step."""
    bc = BenchConfig(**spec["config"])
    import jax

    t0 = time.perf_counter()
    model, params, opt_state, step, tokens, labels, carry = build_jax(bc)
    jax.block_until_ready(params)
    res = {"build_s": time.perf_counter() - t0}
    t0, c0 = time.perf_counter(), time.process_time()
    lowered = step.lower(params, opt_state, carry, tokens, labels)
    res["lower_s"], res["lower_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    res["compile_s"], res["compile_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    try:
        ma = compiled.memory_analysis()
        res["xla_temp_mb"] = ma.temp_size_in_bytes / 2 ** 20
        res["xla_args_mb"] = ma.argument_size_in_bytes / 2 ** 20
    except Exception:  # memory analysis is best effort across backends
        pass
    if spec.get("run"):
        params, opt_state, carry, loss = compiled(params, opt_state, carry, tokens, labels)
        loss.block_until_ready()

        def run():
            nonlocal params, opt_state, carry
            params, opt_state, carry, loss = compiled(params, opt_state, carry, tokens, labels)
            loss.block_until_ready()
        res["peak_mb"] = _step_peak_mb(run)
    return res


def torch_memory(spec: dict) -> dict:
    """`run` entry: peak RSS of one PyTorch train step above the RSS before it."""
    bc = BenchConfig(**spec["config"])
    import torch

    torch.set_num_threads(spec["threads"])
    model, opt, seq, labels = build_torch(bc)
    y, z = torch_train_step(model, opt, seq, labels, *model.get_initial())
    state = {"y": y, "z": z}

    def run():
        state["y"], state["z"] = torch_train_step(model, opt, seq, labels, state["y"], state["z"])
    return {"peak_mb": _step_peak_mb(run)}


def time_frameworks(spec: dict, env: dict, timeout: float, rounds: int = 2) -> dict:
    """Train and predict timings of both frameworks, each in its own worker process, plus the matmul
    peak of each (before, between and after the timed parts). Results as `model._report` reads them:
    lists of (wall, cpu) per framework, first-call times (compile) of JAX.

    Steps run back to back within a framework, as in a training loop: after a few seconds idle both
    frameworks' next step is measurably slower (cold caches, clocks and page mappings), so
    alternating single steps would time neither at its steady state. Instead the frameworks take
    turns in blocks, `rounds` times (ABAB, so that load drift on the machine hits both alike), and a
    train block starts with one untimed step."""
    parts = spec["parts"]
    servers = {}
    try:
        for fw in ("jax", "torch") if spec["torch"] else ("jax",):
            servers[fw] = WorkerServer(SESSION, {**spec, "framework": fw}, env, timeout, name=fw)
        res: dict = {"peak": []}

        def peaks():
            res["peak"].append({fw: s("peak")["gflops"] for fw, s in servers.items()})

        peaks()
        if spec.get("floor", True):
            res["net_matmuls"] = servers["jax"]("net_matmuls")
        for part, total in (("train", spec["iters"]), ("predict", spec["predict_iters"])):
            if part not in parts:
                continue
            first = {fw: s(part)["time"] for fw, s in servers.items()}  # warm-up (JAX: compile)
            res[f"jax_{part}_first_s"] = first["jax"][0]
            for fw in ("jax", "torch"):
                res[f"{fw}_{part}"] = []
            per_round = [total // rounds + (r < total % rounds) for r in range(rounds)]
            for n in filter(None, per_round):
                for fw, s in servers.items():
                    if part == "train":
                        s(part)
                    res[f"{fw}_{part}"] += [s(part)["time"] for _ in range(n)]
            peaks()
        return res
    finally:
        for s in servers.values():
            s.close()
