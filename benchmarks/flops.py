"""Analytic FLOPs of the benchmarked work (matmuls only, 2 FLOP per multiply-add) and the devices' peaks.

`net_matmuls` lists every matmul of one network application as an einsum with its operand shapes;
one index parser (`einsum_indices`) gives both their FLOPs and the two products of their backward
pass. `jax_net_cost_flops` is XLA's own count of the same application (elementwise work included),
the check on the formula. `device_peak` is a device's dense matmul peak from the vendors' data sheets,
what MFU is measured against on accelerators.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from benchmarks.harness import BenchConfig

# dense matmul peaks in TFLOP/s by device kind (vendor data sheets, no sparsity): bfloat16 and TF32 on the
# tensor cores (TF32 is XLA's default float32 matmul path on GPUs), float32 without them
PEAK_TFLOPS = {"bfloat16": {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0},
               "tf32": {"H200": 494.5, "H100": 494.5, "A100": 156.0, "L4": 60.0},
               "float32": {"H200": 67.0, "H100": 67.0, "A100": 19.5, "L4": 30.3, "T4": 8.1}}


def net_matmuls(bc: BenchConfig) -> list[tuple[str, str, tuple, tuple]]:
    """The matmuls of one forward network application on [batch, seq, dim]: (name, einsum, lhs shape,
    rhs shape) per block, laid out as trm_jax computes them (the mixer sequence-first).

    mixer block:       token mixing L -> 4D -> L along the sequence for every (sample, channel);
                       channel mixing D -> D/2 -> D for every (sample, position)
    transformer block: qkv, attention scores and weighted sum per (sample, head), output projection,
                       SwiGLU gate/up and down (hidden H = swiglu_hidden(D, 4)); with mlp_t the
                       attention is a SwiGLU across the sequence for every (sample, channel)
                       (hidden swiglu_hidden(L, 4))
    Norms, activations, softmax and residual adds are not matmuls and not counted.
    """
    B, L, D = bc.batch_size, bc.seq_len, bc.dim
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
        if bc.mlp_t:
            hs = swiglu_hidden(L, 4.0)
            mixing = [("seq gate/up", "ml,lh->mh", (B * D, L), (L, 2 * hs)),
                      ("seq down", "mh,hl->ml", (B * D, hs), (hs, L))]
        else:
            mixing = [("qkv", "md,de->me", (B * L, D), (D, 3 * D)),
                      ("scores", "bqd,bkd->bqk", (B * heads, L, hd), (B * heads, L, hd)),
                      ("weighted sum", "bqk,bkd->bqd", (B * heads, L, L), (B * heads, L, hd)),
                      ("out", "md,de->me", (B * L, D), (D, D))]
        block = mixing + [("gate/up", "md,dh->mh", (B * L, D), (D, 2 * H)), ("down", "mh,hd->md", (B * L, H), (H, D))]
    return [(f"block{i} {name}", eq, a, b) for i in range(bc.depth) for name, eq, a, b in block]


def einsum_indices(eq: str, lhs: tuple, rhs: tuple):
    """("ab,bc->ac", shapes) -> ("ab", "bc", "ac", {index: size})."""
    (a, b), c = eq.split("->")[0].split(","), eq.split("->")[1]
    return a, b, c, dict(zip(a, lhs)) | dict(zip(b, rhs))


def einsum_flops(eq: str, lhs: tuple, rhs: tuple) -> float:
    """2 * (product of all index sizes): one multiply-add per combination of indices."""
    sizes = einsum_indices(eq, lhs, rhs)[3]
    return 2.0 * float(np.prod(list(sizes.values()), dtype=np.float64))


def backward_einsums(eq: str, lhs: tuple, rhs: tuple) -> list[tuple[str, tuple, tuple]]:
    """The two products of the backward pass of `eq`: gradient of the lhs and of the rhs."""
    a, b, c, sizes = einsum_indices(eq, lhs, rhs)
    out = tuple(sizes[i] for i in c)
    return [(f"{c},{b}->{a}", out, rhs), (f"{a},{c}->{b}", lhs, out)]


def net_flops(bc: BenchConfig) -> float:
    """Matmul FLOPs (2 per multiply-add) of one forward network application (see `net_matmuls`)."""
    return sum(einsum_flops(eq, a, b) for _, eq, a, b in net_matmuls(bc))


def head_flops(bc: BenchConfig) -> float:
    """Output head (dim -> vocab at every position) and halting head (mean over positions, dim -> 1)."""
    return float(2 * bc.batch_size * bc.seq_len * bc.dim * bc.num_tokens + 2 * bc.batch_size * bc.dim)


def train_step_flops(bc: BenchConfig) -> float:
    """T*(n+1) network applications forward, the last cycle's n+1 backward (2x forward: input and
    weight gradients), heads forward + backward. The optimizer update is O(params), not counted."""
    n, T = bc.num_latent_refinements, bc.num_refinement_blocks
    return T * (n + 1) * net_flops(bc) + 2 * (n + 1) * net_flops(bc) + 3 * head_flops(bc)


def predict_flops(bc: BenchConfig, steps: int) -> float:
    """`steps` supervision steps forward (T*(n+1) network applications and the heads each)."""
    return steps * (bc.num_refinement_blocks * (bc.num_latent_refinements + 1) * net_flops(bc) + head_flops(bc))


def xla_cost_flops(compiled) -> Optional[float]:
    """FLOPs of a compiled XLA executable by XLA's cost analysis (elementwise work included), or None
    where the backend gives none. XLA counts a loop body once, whatever its trip count."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"])
    except Exception:  # cost analysis is best effort across backends
        return None


def jax_net_cost_flops(bc: BenchConfig) -> Optional[float]:
    """XLA's cost-analysis FLOPs of one forward network application (includes elementwise work)."""
    import jax
    import jax.numpy as jnp

    from trm_jax.models import TinyRecursiveModel, make_model

    model = make_model(bc.model_config(), bc.num_tokens, bc.seq_len)
    h = jnp.zeros((bc.batch_size, bc.seq_len, bc.dim), jnp.float32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, bc.seq_len), jnp.int32)))
    f = jax.jit(lambda p, h: model.apply(p, h, method=TinyRecursiveModel.net))
    return xla_cost_flops(f.lower(params, h).compile())


def device_peak(kind: str, dtype: str) -> Optional[float]:
    """Dense matmul peak in FLOP/s of a device kind ("NVIDIA H200") for `dtype` (a key of PEAK_TFLOPS);
    None for a device or dtype not in the table."""
    return next((tflops * 1e12 for name, tflops in PEAK_TFLOPS.get(dtype, {}).items()
                 if name.lower() in kind.lower()), None)
