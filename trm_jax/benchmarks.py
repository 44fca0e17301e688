"""Model benchmarks: trm_jax against the PyPI `tiny-recursive-model` (PyTorch) at the same architecture
and the same work, measured in the same run, with ratios.

    python scripts/benchmark.py model                      # reference configuration (minutes)
    python scripts/benchmark.py model --quick              # small configuration (about a minute)
    python scripts/benchmark.py model --suite              # reference + transformer + dim=512

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
           (n, 2T).
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

Workers run in subprocesses (`python -m trm_jax.benchmarks <kind> <json>`), so that the memory
numbers and compile times start from a fresh process, and so that the CPU affinity (`--threads`)
and environment (`--xla-flags`, `--malloc-hugepages`) apply to both frameworks alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

# ----------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BenchConfig:
    network: str = "mixer"
    dim: int = 256
    depth: int = 2
    seq_len: int = 81
    vocab: int = 11
    n: int = 6
    T: int = 3
    batch: int = 64
    num_heads: int = 0  # transformer; 0 = dim // 64
    gelu_approximate: bool = False
    remat: str = "auto"  # ModelConfig.remat
    dtype: str = "float32"  # trm_jax compute dtype (ModelConfig.dtype); PyTorch always runs float32

    @property
    def heads(self) -> int:
        return self.num_heads or max(1, self.dim // 64)

    def label(self) -> str:
        net = self.network + ("" if self.network == "mixer" else f" heads={self.heads}")
        return (f"{net} dim={self.dim} depth={self.depth} seq_len={self.seq_len} vocab={self.vocab} "
                f"n={self.n} T={self.T} batch={self.batch} {self.dtype}")


REFERENCE = BenchConfig()
QUICK = BenchConfig(dim=64, batch=16, n=2, T=2)


def model_config(bc: BenchConfig):
    from trm_jax.config import ModelConfig

    return ModelConfig(network=bc.network, dim=bc.dim, depth=bc.depth, num_heads=bc.heads, num_tokens=bc.vocab,
                       num_refinement_blocks=bc.T, num_latent_refinements=bc.n,
                       gelu_approximate=bc.gelu_approximate, remat=bc.remat, dtype=bc.dtype)


# ------------------------------------------------------------------------------------------- FLOPs


def net_matmuls(bc: BenchConfig) -> list[tuple[str, str, tuple, tuple]]:
    """The matmuls of one forward network application on [batch, seq, dim]: (name, einsum, lhs shape,
    rhs shape) per block, laid out as trm_jax computes them (the mixer sequence-first).

    mixer block:       token mixing L -> 4D -> L along the sequence for every (sample, channel);
                       channel mixing D -> D/2 -> D for every (sample, position)
    transformer block: qkv, attention scores and weighted sum per (sample, head), output projection,
                       SwiGLU gate/up and down (hidden H = swiglu_hidden(D, 4))
    Norms, activations, softmax and residual adds are not matmuls and not counted.
    """
    B, L, D = bc.batch, bc.seq_len, bc.dim
    if bc.network == "mixer":
        from trm_jax.config import ModelConfig

        mc = ModelConfig()
        ht, hc = int(mc.expansion_factor * D), int(mc.expansion_factor_token * D)
        block = [("token in", "lh,lm->hm", (L, ht), (L, B * D)), ("token out", "hl,hm->lm", (ht, L), (ht, B * D)),
                 ("channel in", "md,dh->mh", (L * B, D), (D, hc)), ("channel out", "mh,hd->md", (L * B, hc), (hc, D))]
    else:
        from trm_jax.models.transformer import swiglu_hidden

        H, heads = swiglu_hidden(D, 4.0), bc.heads
        hd = D // heads
        block = [("qkv", "md,de->me", (B * L, D), (D, 3 * D)),
                 ("scores", "bqd,bkd->bqk", (B * heads, L, hd), (B * heads, L, hd)),
                 ("weighted sum", "bqk,bkd->bqd", (B * heads, L, L), (B * heads, L, hd)),
                 ("out", "md,de->me", (B * L, D), (D, D)), ("gate/up", "md,dh->mh", (B * L, D), (D, 2 * H)),
                 ("down", "mh,hd->md", (B * L, H), (H, D))]
    return [(f"block{i} {name}", eq, a, b) for i in range(bc.depth) for name, eq, a, b in block]


def _einsum_indices(eq: str, lhs: tuple, rhs: tuple):
    """("ab,bc->ac", shapes) -> ("ab", "bc", "ac", {index: size})."""
    (a, b), c = eq.split("->")[0].split(","), eq.split("->")[1]
    return a, b, c, dict(zip(a, lhs)) | dict(zip(b, rhs))


def einsum_flops(eq: str, lhs: tuple, rhs: tuple) -> float:
    """2 * (product of all index sizes): one multiply-add per combination of indices."""
    sizes = _einsum_indices(eq, lhs, rhs)[3]
    return 2.0 * float(np.prod(list(sizes.values()), dtype=np.float64))


def net_flops(bc: BenchConfig) -> float:
    """Matmul FLOPs (2 per multiply-add) of one forward network application (see `net_matmuls`)."""
    return sum(einsum_flops(eq, a, b) for _, eq, a, b in net_matmuls(bc))


def head_flops(bc: BenchConfig) -> float:
    return float(2 * bc.batch * bc.seq_len * bc.dim * bc.vocab + 2 * bc.batch * bc.dim)


def train_step_flops(bc: BenchConfig) -> float:
    """T*(n+1) network applications forward, the last cycle's n+1 backward (2x forward: input and
    weight gradients), heads forward + backward. The optimizer update is O(params), not counted."""
    apps = bc.T * (bc.n + 1)
    return apps * net_flops(bc) + 2 * (bc.n + 1) * net_flops(bc) + 3 * head_flops(bc)


def predict_flops(bc: BenchConfig, steps: int) -> float:
    return steps * (bc.T * (bc.n + 1) * net_flops(bc) + head_flops(bc))


# -------------------------------------------------------------------------------------------- JAX


def build_jax(bc: BenchConfig, torch_state_dict=None, lr: float = 1e-4):
    """(model, params, opt_state, step_fn, tokens, labels, carry); step_fn is jitted with donation."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from trm_jax.models import compute_loss, from_torch_state_dict, init_params, initial_carry, make_model
    from trm_jax.models import supervision_step

    model = make_model(model_config(bc), bc.vocab, bc.seq_len)
    if torch_state_dict is not None and bc.network == "mixer":
        params = jax.tree.map(jnp.asarray, from_torch_state_dict(torch_state_dict))
    elif torch_state_dict is not None:
        params = jax.tree.map(jnp.asarray, transformer_params_from_torch(torch_state_dict, bc))
    else:
        params = init_params(model, jax.random.key(0))
    # torch.optim.AdamW defaults except the learning rate
    tx = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
    opt_state = tx.init(params)

    def train_step(params, opt_state, carry, tokens, labels):
        def loss_fn(p):
            out = supervision_step(model, p, tokens, carry)
            loss, _ = compute_loss(out.logits, out.halt_logits, labels)
            return loss.sum(), out.carry  # the reference sums the per-sample losses

        (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_carry, loss

    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)), jnp.int32)
    labels = jnp.asarray(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)), jnp.int32)
    carry = initial_carry(model, params, bc.batch)
    step = jax.jit(train_step, donate_argnums=(0, 1, 2))
    return model, params, opt_state, step, tokens, labels, carry


def jax_net_cost_flops(bc: BenchConfig) -> Optional[float]:
    """XLA's cost-analysis FLOPs of one forward network application (includes elementwise work)."""
    import jax
    import jax.numpy as jnp

    from trm_jax.models import make_model
    from trm_jax.models.trm import TinyRecursiveModel

    model = make_model(model_config(bc), bc.vocab, bc.seq_len)
    h = jnp.zeros((bc.batch, bc.seq_len, bc.dim), jnp.float32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, bc.seq_len), jnp.int32)))
    f = jax.jit(lambda p, h: model.apply(p, h, method=TinyRecursiveModel.net))
    try:
        cost = f.lower(params, h).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # cost analysis is best effort across backends
        return None


def matmul_peak(framework: str, n: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of an n x n float32 matmul in XLA ("jax") or PyTorch ("torch")."""
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
        f = jax.jit(jnp.matmul)
        run = lambda: f(a, b).block_until_ready()  # noqa: E731
    else:
        import torch

        ta, tb = torch.randn(n, n), torch.randn(n, n)
        run = lambda: ta @ tb  # noqa: E731
    run()
    return 2 * n ** 3 / min(_timed(run)[0] for _ in range(reps)) / 1e9


def _backward_einsums(eq: str, lhs: tuple, rhs: tuple) -> list[tuple[str, tuple, tuple]]:
    """The two products of the backward pass of `eq`: gradient of the lhs and of the rhs."""
    a, b, c, sizes = _einsum_indices(eq, lhs, rhs)
    out = tuple(sizes[i] for i in c)
    return [(f"{c},{b}->{a}", out, rhs), (f"{a},{c}->{b}", lhs, out)]


def _time_einsum(eq: str, lhs: tuple, rhs: tuple, seconds: float, dtype: str = "float32") -> float:
    """Milliseconds per product in XLA, best of 3 runs of a jitted loop of repetitions."""
    import jax
    import jax.numpy as jnp

    reps = int(min(50, max(3, seconds * 150e9 / einsum_flops(eq, lhs, rhs))))
    a = jax.random.normal(jax.random.key(0), lhs, dtype)
    b = jax.random.normal(jax.random.key(1), rhs, dtype)

    def loop(a, b):  # each product feeds the next, so none is skipped or hoisted
        out = jnp.einsum(eq, a, b)
        return jax.lax.fori_loop(0, reps, lambda i, o: jnp.einsum(eq, a + o.ravel()[0] * 1e-30, b), out)
    f = jax.jit(loop).lower(a, b).compile()
    run = lambda: jax.block_until_ready(f(a, b))  # noqa: E731
    run()
    return 1e3 * min(_timed(run)[0] for _ in range(3)) / (reps + 1)


def net_matmul_times(bc: BenchConfig, seconds: float = 0.2) -> dict:
    """Each matmul of one network application (`net_matmuls`), and the two products of its backward
    pass, timed alone in XLA in the compute dtype: {"forward_ms", "backward_ms"} summed over the network. What one
    application would cost if it were nothing but its matmuls, each as fast as alone."""
    fwd = bwd = 0.0
    for _, eq, lhs, rhs in net_matmuls(bc):
        fwd += _time_einsum(eq, lhs, rhs, seconds, bc.dtype)
        bwd += sum(_time_einsum(*prod, seconds, bc.dtype) for prod in _backward_einsums(eq, lhs, rhs))
    return {"forward_ms": fwd, "backward_ms": bwd}


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


# ------------------------------------------------------------------------------------------ PyTorch


def torch_transformer_network(bc: BenchConfig):
    """The transformer network of trm_jax (post-norm RMSNorm, SwiGLU, RoPE, non-causal attention,
    no biases) written in PyTorch, so both frameworks run the same architecture. The PyPI package
    ships only the MLP-mixer network."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from trm_jax.models.transformer import rope_tables, swiglu_hidden

    dim, heads = bc.dim, bc.heads
    head_dim, hidden = dim // heads, swiglu_hidden(dim, 4.0)
    cos, sin = (torch.tensor(__import__("numpy").asarray(t)) for t in rope_tables(bc.seq_len, head_dim, 10000.0))

    def rope(x):  # x: [b, h, l, hd]
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.out = nn.Linear(dim, dim, bias=False)
            self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
            self.down = nn.Linear(hidden, dim, bias=False)

        def forward(self, h):
            b, l, _ = h.shape
            q, k, v = self.qkv(h).view(b, l, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(rope(q), rope(k), v)
            h = F.rms_norm(h + self.out(a.transpose(1, 2).reshape(b, l, dim)), (dim,), eps=1e-5)
            gate, up = self.gate_up(h).chunk(2, -1)
            return F.rms_norm(h + self.down(F.silu(gate) * up), (dim,), eps=1e-5)

    return nn.Sequential(*[Block() for _ in range(bc.depth)])


def transformer_params_from_torch(sd, bc: BenchConfig) -> dict:
    """Weights of `torch_transformer_network` inside a torch TinyRecursiveModel -> trm_jax params."""
    import numpy as np

    g = lambda k: np.asarray(sd[k].detach().cpu().numpy(), np.float32)  # noqa: E731
    net = {}
    for i in range(bc.depth):
        net[f"block{i}_attention"] = {"qkv": {"kernel": g(f"network.{i}.qkv.weight").T},
                                      "out": {"kernel": g(f"network.{i}.out.weight").T}}
        net[f"block{i}_mlp"] = {"gate_up": {"kernel": g(f"network.{i}.gate_up.weight").T},
                                "down": {"kernel": g(f"network.{i}.down.weight").T}}
    return {"input_embed": {"embedding": g("input_embed.weight")}, "output_init_embed": g("output_init_embed"),
            "latent_init_embed": g("latent_init_embed"), "network": net,
            "to_pred": {"kernel": g("to_pred.weight").T}, "to_halt_pred": {"kernel": g("to_halt_pred.1.weight").T}}


def build_torch(bc: BenchConfig, lr: float = 1e-4):
    """(model, optimizer, seq, labels) with the lucidrains TinyRecursiveModel."""
    import numpy as np
    import torch
    import tiny_recursive_model as trm_pt

    torch.manual_seed(0)
    if bc.network == "mixer":
        network = trm_pt.MLPMixer1D(dim=bc.dim, depth=bc.depth, seq_len=bc.seq_len)
    else:
        network = torch_transformer_network(bc)
    model = trm_pt.TinyRecursiveModel(dim=bc.dim, num_tokens=bc.vocab, network=network,
                                      num_refinement_blocks=bc.T, num_latent_refinements=bc.n)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.RandomState(0)
    seq = torch.tensor(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)))
    labels = torch.tensor(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)))
    return model, opt, seq, labels


def torch_train_step(model, opt, seq, labels, y, z):
    loss, _, y, z, _, _ = model(seq, y, z, labels=labels)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return y, z


# ------------------------------------------------------------------------------------------ workers


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
            res = {"time": _timed(session["train"])}
        elif cmd == "predict":
            res = {"time": _timed(lambda: session["predict"](spec["predict_steps"]))}
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


WORKERS = {"serve": worker_serve, "compile": worker_compile, "torch_memory": worker_torch_memory}


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
        self.proc = subprocess.Popen([sys.executable, "-m", "trm_jax.benchmarks", "serve",
                                      json.dumps({**spec, "framework": framework})], env=env, text=True,
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
    proc = subprocess.run([sys.executable, "-m", "trm_jax.benchmarks", kind, json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = (proc.stderr or proc.stdout)[-3000:]
    raise RuntimeError(f"benchmark worker '{kind}' failed (exit {proc.returncode}):\n{tail}")


# ------------------------------------------------------------------------------------------- driver


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    d = REFERENCE
    p.add_argument("--network", choices=["mixer", "transformer"], default=d.network)
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--depth", type=int, default=d.depth)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--vocab", type=int, default=d.vocab)
    p.add_argument("--n", type=int, default=d.n, help="latent refinements per cycle")
    p.add_argument("--T", type=int, default=d.T, help="cycles per supervision step")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--heads", type=int, default=0, help="transformer heads (default dim/64)")
    p.add_argument("--gelu-approximate", action="store_true", help="tanh GELU in trm_jax (default exact)")
    p.add_argument("--remat", default="auto", choices=["auto", "none", "dots", "full"],
                   help="trm_jax model.remat for the gradient cycle (default auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="trm_jax compute dtype (params stay float32; for accelerators; PyTorch runs float32)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both frameworks (default 2)")
    p.add_argument("--iters", type=int, default=6, help="timed training steps per framework (default 6)")
    p.add_argument("--predict-steps", type=int, default=16, help="supervision steps in predict (default 16)")
    p.add_argument("--predict-iters", type=int, default=2, help="timed predict calls per framework (default 2)")
    p.add_argument("--parts", default="train,predict,compile,memory",
                   help="comma list of train,predict,compile,memory (default all)")
    p.add_argument("--quick", action="store_true", help=f"small configuration ({QUICK.label()})")
    p.add_argument("--suite", action="store_true",
                   help="the reference configuration, the transformer network, and dim=512")
    p.add_argument("--no-torch", action="store_true", help="trm_jax only")
    p.add_argument("--xla-flags", default=None, help="XLA_FLAGS for the workers (default: inherited)")
    p.add_argument("--malloc-hugepages", action=argparse.BooleanOptionalAction, default=True,
                   help="run workers with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages "
                        "for large allocations: far fewer page faults; applies to both frameworks)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")


def _config_from_args(args) -> BenchConfig:
    if args.quick:
        return dataclasses.replace(QUICK, network=args.network, gelu_approximate=args.gelu_approximate,
                                   remat=args.remat, dtype=args.dtype)
    return BenchConfig(network=args.network, dim=args.dim, depth=args.depth, seq_len=args.seq_len,
                       vocab=args.vocab, n=args.n, T=args.T, batch=args.batch, num_heads=args.heads,
                       gelu_approximate=args.gelu_approximate, remat=args.remat, dtype=args.dtype)


MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _env(args, memory: bool = False) -> dict:
    env = dict(os.environ)
    if memory:
        env.update(MEMORY_ENV)
    if args.xla_flags is not None:
        env["XLA_FLAGS"] = args.xla_flags
    if args.malloc_hugepages:
        tun = env.get("GLIBC_TUNABLES", "")
        if "glibc.malloc.hugetlb" not in tun:
            env["GLIBC_TUNABLES"] = ":".join(filter(None, [tun, "glibc.malloc.hugetlb=1"]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


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
    out: dict = {"config": dataclasses.asdict(bc), "label": bc.label(), "threads": args.threads,
                 "train_gflop": train_step_flops(bc) / 1e9,
                 "predict_gflop": predict_flops(bc, args.predict_steps) / 1e9,
                 "net_gflop_analytic": net_flops(bc) / 1e9}
    print(f"\n== {bc.label()}, {args.threads} threads", flush=True)
    base = {"config": dataclasses.asdict(bc), "threads": args.threads}
    if parts & {"train", "predict"}:
        t0 = time.perf_counter()
        out["time"] = time_frameworks({**base, "iters": args.iters, "predict_iters": args.predict_iters,
                                       "predict_steps": args.predict_steps, "parts": sorted(parts),
                                       "torch": use_torch}, env, args.timeout)
        print(f"   timings done in {time.perf_counter() - t0:.0f} s", flush=True)
    if parts & {"compile", "memory"}:
        # the reference configuration last: the first worker process pays for cold file caches, which
        # should not flatter the growth with n and T
        runs = []
        if scaling and "compile" in parts:
            runs += [("2n", dataclasses.replace(bc, n=2 * bc.n)), ("2T", dataclasses.replace(bc, T=2 * bc.T))]
        if scaling and "memory" in parts:
            runs += [("T2", dataclasses.replace(bc, T=2))] if bc.T != 2 else []
        runs.append(("ref", bc))
        out["compile"] = {}
        for name, c in runs:
            run = "memory" in parts and name in ("ref", "2T", "T2")
            out["compile"][name] = run_worker("compile", {"config": dataclasses.asdict(c), "threads": args.threads,
                                                          "run": run}, _env(args, memory=run), args.timeout)
            out["compile"][name]["T"], out["compile"][name]["n"] = c.T, c.n
        if "memory" in parts and use_torch:
            out["torch_memory"] = run_worker("torch_memory", base, _env(args, memory=True), args.timeout)
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
        apps = c["T"] * (c["n"] + 1)
        floors = {"train": (apps * nm["forward_ms"] + (c["n"] + 1) * nm["backward_ms"]) / 1e3,
                  "predict": args.predict_steps * apps * nm["forward_ms"] / 1e3}
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
    for name, c in comp.items():
        tag = {"ref": "", "2n": " (2n)", "2T": " (2T)", "T2": " (T=2)"}[name]
        rows.append((f"compile n={c['n']} T={c['T']}{tag} (s) wall/cpu",
                     f"{c['lower_s'] + c['compile_s']:.1f}/{c['lower_cpu_s'] + c['compile_cpu_s']:.1f}", "-", ""))
    for name, c in comp.items():
        if c.get("peak_mb") is not None:
            ref = r.get("torch_memory", {}).get("peak_mb") if name == "ref" else None
            rows.append((f"step peak memory n={c['n']} T={c['T']} (MB)", f"{c['peak_mb']:.0f}",
                         f"{ref:.0f}" if ref else "-", _fmt_ratio(c["peak_mb"], ref) if ref else ""))
        if c.get("xla_temp_mb") is not None:
            rows.append((f"  XLA temp buffer n={c['n']} T={c['T']} (MB)", f"{c['xla_temp_mb']:.0f}", "-", ""))
    if "ref" in comp:
        tot = lambda c: c["lower_s"] + c["compile_s"]  # noqa: E731
        for name in ("2n", "2T"):
            if name in comp:
                rows.append((f"compile growth {name} vs ref", f"{100 * (tot(comp[name]) / tot(comp['ref']) - 1):+.0f}%",
                             "-", ""))
    lo, hi = comp.get("T2", {}).get("peak_mb"), comp.get("2T", {}).get("peak_mb")
    if lo and hi:
        rows.append((f"step peak memory T={comp['2T']['T']} vs T=2", f"{100 * (hi / lo - 1):+.0f}%", "-", ""))
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


def bench_model(args: argparse.Namespace) -> dict:
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    bad = parts - {"train", "predict", "compile", "memory"}
    if bad:
        raise SystemExit(f"--parts: unknown {sorted(bad)}; choose from train,predict,compile,memory")
    bc = _config_from_args(args)
    print(f"model benchmark: trm_jax vs tiny-recursive-model; {os.cpu_count()} CPUs; "
          f"XLA_FLAGS={_env(args).get('XLA_FLAGS', '')!r}; malloc hugepages {'on' if args.malloc_hugepages else 'off'}")
    results = {"reference": bench_one(bc, args, parts)}
    if args.suite:
        results["transformer"] = bench_one(dataclasses.replace(bc, network="transformer"), args, parts,
                                           scaling=False)
        results["dim512"] = bench_one(dataclasses.replace(bc, dim=2 * bc.dim), args, parts - {"predict"},
                                      scaling=False)
    return results


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
