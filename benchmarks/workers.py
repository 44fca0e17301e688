"""Worker processes of the model benchmark, and the driver side that starts and talks to them.

Workers run in subprocesses (`python -m benchmarks.workers <kind> <json>`), so that the memory
numbers and compile times start from a fresh process, and so that the CPU affinity (`--threads`)
and environment (`--xla-flags`, `--malloc-hugepages`) apply to both frameworks alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Optional

from benchmarks.config import BenchConfig
from benchmarks.jax_step import build_jax
from benchmarks.kernels import matmul_peak, net_matmul_times, timed
from benchmarks.torch_reference import build_torch, torch_train_step

# the checkout holding the `benchmarks` package: workers import it from there (it is not installed)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _with_repo_on_path(env: dict) -> dict:
    """`env` with the checkout first on PYTHONPATH, so `python -m benchmarks.workers` resolves."""
    path = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, path]))}


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
    import gc

    gc.collect()
    if not _reset_hwm():
        return None
    before, _ = _rss_kb()
    run_step()
    _, peak = _rss_kb()
    return (peak - before) / 1024


def _jax_session(bc: BenchConfig, spec: dict) -> dict:
    """Commands of a JAX timing worker: one jitted train step (donated state) and predict."""
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


def worker_serve(spec: dict) -> dict:
    """A timing worker for one framework that stays up and answers commands read from stdin, one per
    line: `train`, `predict`, `peak`, `net_matmuls` (JAX), `quit`. Each answer is `@@RESULT@@` + JSON
    (wall and CPU time; GFLOP/s for `peak`). The driver (`time_frameworks`) runs one such process
    per framework, so each framework runs alone in its process (its own allocator and thread
    pools)."""
    bc = BenchConfig(**spec["config"])
    framework = spec["framework"]
    session = (_jax_session if framework == "jax" else _torch_session)(bc, spec)
    print("@@RESULT@@" + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd == "train":
            res = {"time": timed(session["train"])}
        elif cmd == "predict":
            res = {"time": timed(lambda: session["predict"](spec["predict_steps"]))}
        elif cmd == "peak":
            res = {"gflops": matmul_peak(framework)}
        elif cmd == "net_matmuls":
            res = net_matmul_times(bc)
        else:
            res = {"error": f"unknown command {cmd!r}"}
        print("@@RESULT@@" + json.dumps(res), flush=True)
    return {}


def worker_compile(spec: dict) -> dict:
    """Trace+lower and compile time of the JAX train step, its XLA memory analysis, and (optionally)
    the peak RSS of one executed step."""
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
    except Exception:
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


def worker_torch_memory(spec: dict) -> dict:
    bc = BenchConfig(**spec["config"])
    import torch

    torch.set_num_threads(spec["threads"])
    model, opt, seq, labels = build_torch(bc)
    y, z = torch_train_step(model, opt, seq, labels, *model.get_initial())
    state = {"y": y, "z": z}

    def run():
        state["y"], state["z"] = torch_train_step(model, opt, seq, labels, state["y"], state["z"])
    return {"peak_mb": _step_peak_mb(run)}


def worker_time_to_accuracy(spec: dict) -> dict:
    from benchmarks.time_to_accuracy import train_worker

    return train_worker(spec)


WORKERS = {"serve": worker_serve, "compile": worker_compile, "torch_memory": worker_torch_memory,
           "time_to_accuracy": worker_time_to_accuracy}


def _worker_main(argv) -> int:
    kind, spec = argv[0], json.loads(argv[1])
    threads = spec.get("threads")
    if threads and hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    res = WORKERS[kind](spec)
    if kind != "serve":
        print("@@RESULT@@" + json.dumps(res))
    return 0


class _Server:
    """Driver side of `worker_serve`: one persistent worker process per framework."""

    def __init__(self, framework: str, spec: dict, env: dict, timeout: float):
        self.framework, self.timeout = framework, timeout
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.workers", "serve",
                                      json.dumps({**spec, "framework": framework})],
                                     env=_with_repo_on_path(env), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self(None)  # "ready" once the model is built

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@RESULT@@"):
                res = json.loads(line[len("@@RESULT@@"):])
                if "error" in res:
                    raise RuntimeError(f"benchmark worker ({self.framework}): {res['error']}")
                return res
        self.proc.wait(timeout=60)
        tail = self.proc.stderr.read()[-3000:]
        raise RuntimeError(f"benchmark worker ({self.framework}) failed (exit {self.proc.returncode}):\n{tail}")

    def __call__(self, cmd: Optional[str]) -> dict:
        watchdog = threading.Timer(self.timeout, self.proc.kill)  # a hung worker ends with an error
        watchdog.start()
        try:
            if cmd is not None:
                self.proc.stdin.write(cmd + "\n")
                self.proc.stdin.flush()
            return self._read()
        finally:
            watchdog.cancel()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def time_frameworks(spec: dict, env: dict, timeout: float, rounds: int = 2) -> dict:
    """Train and predict timings of both frameworks, each in its own worker process, plus the matmul
    peak of each (before, between and after the timed parts). Results as `_report` reads them: lists
    of (wall, cpu) per framework, first-call times (compile) of JAX.

    Steps run back to back within a framework, as in a training loop: after a few seconds idle both
    frameworks' next step is measurably slower (cold caches, clocks and page mappings), so
    alternating single steps would time neither at its steady state. Instead the frameworks take
    turns in blocks, `rounds` times (ABAB, so that load drift on the machine hits both alike), and a
    train block starts with one untimed step."""
    parts = spec["parts"]
    servers = {"jax": _Server("jax", spec, env, timeout)}
    try:
        if spec["torch"]:
            servers["torch"] = _Server("torch", spec, env, timeout)
        res: dict = {"peak": []}

        def peaks():
            res["peak"].append({fw: s("peak")["gflops"] for fw, s in servers.items()})

        peaks()
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


def run_worker(kind: str, spec: dict, env: dict, timeout: float) -> dict:
    """Run one worker of `kind` (compile, torch_memory) in a fresh process; its result."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.workers", kind, json.dumps(spec)],
                          env=_with_repo_on_path(env), capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = (proc.stderr or proc.stdout)[-3000:]
    raise RuntimeError(f"benchmark worker '{kind}' failed (exit {proc.returncode}):\n{tail}")


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
