"""The benchmark harness: one benchmark config, worker processes, timing, and a run config cut to one stage.

- `BenchConfig`: the benchmarked model, training and work, its fields named as trm_jax's config names
  them, with `add_config_arguments` / `config_from_args` (one `--flag` per field) for every benchmark.
- Workers: `run_worker` runs a "module:function" entry once in a fresh process, `WorkerServer` keeps
  one answering commands; both in `worker_env`, pinned to `spec["threads"]` CPUs.

      python -m benchmarks.harness run   <module:function> <json spec>   # prints the function's result
      python -m benchmarks.harness serve <module:function> <json spec>   # answers commands read from stdin

  A benchmark names its worker entry as a "module:function" string, imported here with importlib, so
  this module imports no benchmark. Fresh processes make memory numbers and compile times start from
  scratch, and the CPU affinity and environment (XLA_FLAGS, malloc tunables) apply to every framework
  alike.
- Timing: `timed` (wall and CPU seconds of one call), `best_time` (the fastest of several calls),
  `time_training` (a run's loop time per step from its metrics).
- `one_stage_config`: a run config cut to one curriculum stage with nothing else inside the timed loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from scripts.launcher import with_huge_pages

# the checkout holding the `benchmarks` package: workers import it from there (it is not installed)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO_ROOT, "configs")
RESULT = "@@RESULT@@"
FAR = 10 ** 9  # an interval past any run's end


# ------------------------------------------------------------------------------------------ config

@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What a benchmark runs: the model (ModelConfig's names), its training (TrainingConfig's names), the
    CPU threads, and for the time-to-accuracy runs their Sudoku data and time budget. Each benchmark
    reads the fields it needs; the defaults are the model benchmark's reference configuration."""

    # model
    network: str = "mixer"
    dim: int = 256
    depth: int = 2
    seq_len: int = 81
    num_tokens: int = 11
    num_latent_refinements: int = 6
    num_refinement_blocks: int = 3
    num_heads: int = 0  # transformer; 0 = dim // 64
    mlp_t: bool = False  # transformer: a SwiGLU across the sequence replaces attention (official Sudoku MLP recipe)
    max_recursion_depth: int = 16
    halt_threshold: float = 0.5
    gelu_approximate: bool = False
    remat: str = "auto"
    dtype: str = "float32"  # trm_jax's compute dtype; PyTorch always runs float32
    scan_unroll: int = 1  # tests unroll the latent scan for XLA's cost analysis
    # training (AdamW with PyTorch's defaults but the learning rate)
    batch_size: int = 64
    learning_rate: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    halted_samples: str = "refill"  # trm_jax's training.halted_samples (PyPI's Trainer always drops)
    seed: int = 0
    threads: int = 2  # CPU threads of every framework
    # time to accuracy: generated Sudoku, training-time budget
    givens: int = 40
    num_train: int = 4096
    num_eval: int = 512
    eval_batch_size: int = 256
    budget_s: float = 300.0  # training seconds per framework, evaluation pauses left out
    eval_every_s: float = 30.0

    @property
    def heads(self) -> int:
        return self.num_heads or max(1, self.dim // 64)

    def label(self) -> str:
        """The architecture and work in one line."""
        net = self.network + ("" if self.network == "mixer" else " mlp_t" if self.mlp_t else f" heads={self.heads}")
        return (f"{net} dim={self.dim} depth={self.depth} seq_len={self.seq_len} num_tokens={self.num_tokens} "
                f"n={self.num_latent_refinements} T={self.num_refinement_blocks} batch={self.batch_size} {self.dtype}")

    @classmethod
    def from_model(cls, model, seq_len: int, batch_size: int) -> "BenchConfig":
        """The FLOP formula's view of a trm_jax `ModelConfig` at `seq_len` tokens (plus its puzzle prefix)."""
        return cls(network=model.network, dim=model.dim, depth=model.depth, seq_len=seq_len + model.puzzle_emb_len,
                   num_tokens=model.num_tokens, num_latent_refinements=model.num_latent_refinements,
                   num_refinement_blocks=model.num_refinement_blocks, num_heads=model.num_heads, mlp_t=model.mlp_t,
                   batch_size=batch_size)

    def model_config(self):
        """The trm_jax `ModelConfig` of this architecture."""
        from trm_jax.config import ModelConfig

        return ModelConfig(network=self.network, dim=self.dim, depth=self.depth, num_heads=self.heads,
                           num_tokens=self.num_tokens, num_refinement_blocks=self.num_refinement_blocks,
                           num_latent_refinements=self.num_latent_refinements, mlp_t=self.mlp_t,
                           max_recursion_depth=self.max_recursion_depth, halt_threshold=self.halt_threshold,
                           gelu_approximate=self.gelu_approximate, remat=self.remat, dtype=self.dtype,
                           scan_unroll=self.scan_unroll)


# the command-line option of each field: its help and its choices
OPTIONS = {
    "network": ("the model's network", ("mixer", "transformer")),
    "dim": ("model width", None),
    "depth": ("network layers", None),
    "seq_len": ("tokens per sample", None),
    "num_tokens": ("vocabulary size", None),
    "num_latent_refinements": ("latent refinements per cycle (n)", None),
    "num_refinement_blocks": ("cycles per supervision step (T)", None),
    "num_heads": ("transformer heads (0: dim / 64)", None),
    "max_recursion_depth": ("supervision steps at most, training and evaluation", None),
    "halt_threshold": ("halting probability that stops a sample", None),
    "gelu_approximate": ("tanh GELU in trm_jax (default exact)", None),
    "remat": ("trm_jax model.remat of the gradient cycle", ("auto", "none", "dots", "full")),
    "dtype": ("trm_jax compute dtype (params stay float32; for accelerators; PyTorch runs float32)",
              ("float32", "bfloat16")),
    "batch_size": ("samples per step", None),
    "learning_rate": ("AdamW learning rate per step (after warmup)", None),
    "warmup_steps": ("linear learning-rate warmup steps", None),
    "weight_decay": ("AdamW weight decay", None),
    "ema_decay": ("EMA decay of both trainers (0: no EMA)", None),
    "halted_samples": ("trm_jax's training.halted_samples: refill halted slots at once (the official recipe) or "
                       "drop them until the whole batch halted (the PyPI Trainer's schedule)", ("refill", "drop")),
    "seed": ("seed of the data and the weights", None),
    "threads": ("CPU threads of both frameworks", None),
    "givens": ("givens per puzzle, 17-80; above 50 more solution cells are revealed", None),
    "num_train": ("training puzzles", None),
    "num_eval": ("held-out puzzles", None),
    "budget_s": ("training seconds per framework, evaluations left out", None),
    "eval_every_s": ("training seconds between held-out evaluations", None),
}


def add_config_arguments(parser: argparse.ArgumentParser, default: BenchConfig, names: Sequence[str]) -> None:
    """One option per field in `names` (`--num-latent-refinements` for num_latent_refinements), typed by
    the field, shown with `default`'s value; `config_from_args` reads them back."""
    for name in names:
        help_text, choices = OPTIONS[name]
        value = getattr(default, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=type(value), choices=choices, default=argparse.SUPPRESS,
                                help=f"{help_text} (default {value})")


def config_from_args(args: argparse.Namespace, default: BenchConfig,
                     quick: Optional[BenchConfig] = None) -> BenchConfig:
    """`default` (or `quick` with --quick) with the fields the command line gave."""
    base = quick if quick is not None and getattr(args, "quick", False) else default
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(BenchConfig) if hasattr(args, f.name)}
    return dataclasses.replace(base, **given)


def add_malloc_hugepages_argument(p: argparse.ArgumentParser) -> None:
    """--malloc-hugepages / --no-malloc-hugepages: the workers' malloc setting (scripts/launcher.py)."""
    p.add_argument("--malloc-hugepages", action=argparse.BooleanOptionalAction, default=True,
                   help="run both frameworks' workers with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent "
                        "huge pages: far fewer page faults), as trm_jax's scripts run; --no-malloc-hugepages: "
                        "both without (default: on)")


# ------------------------------------------------------------------------------------------ workers

def worker_env(huge_pages: Optional[bool] = None, xla_flags: Optional[str] = None, **extra: str) -> dict:
    """This process's environment for a worker: `extra` variables, XLA_FLAGS where given, malloc on huge
    pages or not (None: as this process has it), TensorFlow's C++ logs quiet."""
    env = dict(os.environ, **extra)
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    if huge_pages is not None:
        env = with_huge_pages(env, huge_pages)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _with_repo_on_path(env: dict) -> dict:
    """`env` with the checkout first on PYTHONPATH, so `python -m benchmarks.harness` resolves."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH", "")]))}


def resolve(entry: str) -> Callable:
    """The function named by "package.module:function"."""
    module, sep, name = entry.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"worker entry must be 'module:function', got {entry!r}")
    return getattr(importlib.import_module(module), name)


class WorkerError(RuntimeError):
    """A worker process failed: `reason` ("exit 1", "killed after 60 s"), the end of its `output`, and
    `partial`, the last result it reported before ("" / {} where none)."""

    def __init__(self, name: str, reason: str, output: str = "", partial: Optional[dict] = None):
        super().__init__(f"benchmark worker {name} failed ({reason}):\n{output}" if output else
                         f"benchmark worker {name}: {reason}")
        self.reason, self.output, self.partial = reason, output, partial or {}


def _start(mode: str, entry: str, spec: dict, env: dict, stdin=None) -> subprocess.Popen:
    # stderr joins stdout: one pipe to drain (a full stderr pipe would block the worker), one tail to show
    return subprocess.Popen([sys.executable, "-m", "benchmarks.harness", mode, entry, json.dumps(spec)],
                            env=_with_repo_on_path(env), text=True, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _next_result(proc: subprocess.Popen, tail: list, on_line: Optional[Callable[[str], None]]) -> Optional[dict]:
    """The next result line of `proc` (None at the end of its output); other lines go to `tail` and `on_line`."""
    for line in proc.stdout:
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
        tail[:] = (tail + [line])[-60:]
        if on_line is not None:
            on_line(line)
    return None


def _failure(name: str, proc: subprocess.Popen, tail: list, timeout: float, partial=None) -> WorkerError:
    reason = f"killed after {timeout:.0f} s" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
    return WorkerError(name, reason, "".join(tail)[-3000:], partial)


def run_worker(entry: str, spec: dict, env: dict, timeout: float,
               on_line: Optional[Callable[[str], None]] = None) -> dict:
    """Run `entry(spec)` in a fresh process and return its result (a JSON-able dict); the lines it prints
    go to `on_line` as they come. A worker that fails or runs past `timeout` seconds raises `WorkerError`."""
    proc = _start("run", entry, spec, env)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    tail: list = []
    result = None
    try:
        while (res := _next_result(proc, tail, on_line)) is not None:
            result = res
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    if proc.returncode != 0 or result is None:
        raise _failure(f"'{entry}'", proc, tail, timeout, result)
    return result


def answer(result: dict) -> None:
    """Report `result` to the driver (a worker entry may report a partial result before its last one)."""
    print(RESULT + json.dumps(result), flush=True)


class WorkerServer:
    """Driver side of a `serve` worker: one persistent process answering commands, each within `timeout`."""

    def __init__(self, entry: str, spec: dict, env: dict, timeout: float, name: Optional[str] = None):
        self.name, self.timeout, self.tail = name or entry, timeout, []
        self.proc = _start("serve", entry, spec, env, stdin=subprocess.PIPE)
        self(None)  # "ready" once the entry has built its session

    def __call__(self, cmd: Optional[str]) -> dict:
        watchdog = threading.Timer(self.timeout, self.proc.kill)  # a hung worker ends with an error
        watchdog.start()
        try:
            if cmd is not None:
                self.proc.stdin.write(cmd + "\n")
                self.proc.stdin.flush()
            res = _next_result(self.proc, self.tail, None)
        finally:
            watchdog.cancel()
        if res is None:
            self.proc.wait(timeout=60)
            raise _failure(f"({self.name})", self.proc, self.tail, self.timeout)
        if "error" in res:
            raise WorkerError(f"({self.name})", res["error"])
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.stdout.close()


def _pin_threads(spec: dict) -> None:
    threads = spec.get("threads")
    if threads and hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def _serve(commands: dict) -> None:
    """Answer one command per stdin line (`quit` ends) with the JSON of commands[name]()."""
    answer({"ready": True})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        fn = commands.get(cmd)
        answer(fn() if fn is not None else {"error": f"unknown command {cmd!r}"})


def worker_main(argv) -> int:
    mode, entry, spec = argv[0], argv[1], json.loads(argv[2])
    _pin_threads(spec)
    fn = resolve(entry)
    if mode == "serve":
        _serve(fn(spec))  # the entry builds its session and returns {command: () -> dict}
    elif mode == "run":
        answer(fn(spec))
    else:
        raise SystemExit(f"unknown worker mode {mode!r}: run or serve")
    return 0


def write_json(path: Optional[str], results) -> None:
    """`results` as JSON at `path` (a benchmark's --json); nothing where `path` is None."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


# ------------------------------------------------------------------------------------------- timing

def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call of `fn`."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def best_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    """Wall seconds of the fastest of `repeats` calls of `fn`, after one untimed call (compilation, thread
    pools, first-touch page faults) unless `warmup` is false."""
    if warmup:
        fn()
    return min(timed(fn)[0] for _ in range(repeats))


def time_training(config, run_dir: str, prefetch_batches: Optional[int] = None) -> dict:
    """Train `config` in `run_dir`: the last step, `train()`'s wall time ("train_s") and the training loop's
    seconds per step ("loop_s_per_step", from metrics.jsonl, first training record to last, so setup, the
    first window's compilation, the final evaluation and checkpoint lie outside it)."""
    from trm_jax.training import create_trainer, read_metrics

    trainer = create_trainer(config.replace(run_dir=run_dir))
    if prefetch_batches is not None:
        trainer.prefetch_batches = prefetch_batches
    t = time.perf_counter()
    try:
        result = trainer.train()
    finally:
        trainer.close()
    train_s = time.perf_counter() - t
    records = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    first, last = records[0], records[-1]
    if last["step"] <= first["step"]:
        raise SystemExit("--steps gives one training record; raise it above training.log_every")
    return dict(step=result.step, train_s=train_s,
                loop_s_per_step=(last["timestamp"] - first["timestamp"]) / (last["step"] - first["step"]))


# ------------------------------------------------------------------------------------ one stage

def one_stage_config(path: str, steps: int, overrides: Sequence[str] = (), stage: int = 0):
    """The run config at `path` (with `overrides`) cut to one curriculum stage of `steps` steps with the
    settings of its stage `stage` (the first by default; resolved as training resolves them,
    `trm_jax.training.stages.stage_settings`: shapes, data difficulty, learning rate, T and n), with no
    evaluation, checkpoint or progress bar inside the run (its final evaluation and checkpoint remain)."""
    from trm_jax.config import load_config
    from trm_jax.training.stages import stage_settings

    settings = stage_settings(load_config(path, list(overrides)))[stage][2]
    stage_text = ", ".join(f"{k}: {v}" for k, v in dict(settings, steps=steps).items())
    return load_config(path, [*overrides, f"curriculum.stages=[{{{stage_text}}}]", f"training.eval_every={FAR}",
                              f"training.checkpoint_every={FAR}", "training.progress_bar=false"])


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
