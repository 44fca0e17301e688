"""Generic benchmark worker processes: run a `module:function` in a fresh process, once or as a server.

    python -m benchmarks.workers run   <module:function> <json spec>   # prints the function's result
    python -m benchmarks.workers serve <module:function> <json spec>   # answers commands read from stdin

A benchmark names its worker entry as a "module:function" string, imported here with importlib, so
this runner imports no benchmark (and no benchmark's internals import it back). Fresh processes
make memory numbers and compile times start from scratch, and the CPU affinity (`spec["threads"]`)
and environment (XLA_FLAGS, malloc tunables) apply to every framework alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
from typing import Callable, Optional

# the checkout holding the `benchmarks` package: workers import it from there (it is not installed)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = "@@RESULT@@"


def with_repo_on_path(env: dict) -> dict:
    """`env` with the checkout first on PYTHONPATH, so `python -m benchmarks.workers` resolves."""
    path = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, path]))}


def resolve(entry: str) -> Callable:
    """The function named by "package.module:function"."""
    module, sep, name = entry.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"worker entry must be 'module:function', got {entry!r}")
    return getattr(importlib.import_module(module), name)


def _pin_threads(spec: dict) -> None:
    threads = spec.get("threads")
    if threads and hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def _answer(res: dict) -> None:
    print(RESULT + json.dumps(res), flush=True)


def _serve(commands: dict) -> None:
    """Answer one command per stdin line (`quit` ends) with the JSON of commands[name]()."""
    _answer({"ready": True})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        fn = commands.get(cmd)
        _answer(fn() if fn is not None else {"error": f"unknown command {cmd!r}"})


def worker_main(argv) -> int:
    mode, entry, spec = argv[0], argv[1], json.loads(argv[2])
    _pin_threads(spec)
    fn = resolve(entry)
    if mode == "serve":
        _serve(fn(spec))  # the entry builds its session and returns {command: () -> dict}
    elif mode == "run":
        _answer(fn(spec))
    else:
        raise SystemExit(f"unknown worker mode {mode!r}: run or serve")
    return 0


def _command(mode: str, entry: str, spec: dict) -> list:
    return [sys.executable, "-m", "benchmarks.workers", mode, entry, json.dumps(spec)]


def _failure(name: str, returncode, output: str) -> RuntimeError:
    return RuntimeError(f"benchmark worker {name} failed (exit {returncode}):\n{output[-3000:]}")


class WorkerServer:
    """Driver side of a `serve` worker: one persistent process answering commands, each within `timeout`."""

    def __init__(self, entry: str, spec: dict, env: dict, timeout: float, name: Optional[str] = None):
        self.name, self.timeout = name or entry, timeout
        self.proc = subprocess.Popen(_command("serve", entry, spec), env=with_repo_on_path(env), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self(None)  # "ready" once the entry has built its session

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(RESULT):
                res = json.loads(line[len(RESULT):])
                if "error" in res:
                    raise RuntimeError(f"benchmark worker ({self.name}): {res['error']}")
                return res
        self.proc.wait(timeout=60)
        raise _failure(f"({self.name})", self.proc.returncode, self.proc.stderr.read())

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


def add_malloc_hugepages_argument(p) -> None:
    """--malloc-hugepages / --no-malloc-hugepages: the workers' malloc setting (trm_jax/huge_pages.py)."""
    p.add_argument("--malloc-hugepages", action=argparse.BooleanOptionalAction, default=True,
                   help="run both frameworks' workers with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent "
                        "huge pages: far fewer page faults), as trm_jax's scripts run; --no-malloc-hugepages: "
                        "both without (default: on)")


def run_worker(entry: str, spec: dict, env: dict, timeout: float) -> dict:
    """Run `entry(spec)` in a fresh process; its result (a JSON-able dict)."""
    proc = subprocess.run(_command("run", entry, spec), env=with_repo_on_path(env), capture_output=True, text=True,
                          timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise _failure(f"'{entry}'", proc.returncode, proc.stderr or proc.stdout)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
