"""Transformer network in the official TRM recipe (TinyRecursiveModels: models/layers.py and
TinyRecursiveReasoningModel_ACTV1Block in models/recursive_reasoning/trm.py).

Post-norm blocks (parameter-free RMSNorm after each residual, in float32), then either non-causal
multi-head attention with rotary position embeddings or, with `mlp_t`, a SwiGLU across the sequence
axis; then a SwiGLU feed-forward. No biases; official CastedLinear init (truncated LeCun normal).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from trm_jax.errors import ConfigError
from trm_jax.models.layers import rms_norm

# official CastedLinear: trunc_normal_init_(std=1/sqrt(fan_in)) at +-2 std with the corrected std, i.e. JAX's
# truncated LeCun normal (models/common.py reproduces jax.nn.initializers in PyTorch)
_lecun = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


def swiglu_hidden(dim: int, expansion: float) -> int:
    """SwiGLU width as in the official code: 2/3 of expansion*dim, rounded up to a multiple of 256."""
    hidden = round(expansion * dim * 2 / 3)
    return -(-hidden // 256) * 256


def rope_tables(seq_len: int, head_dim: int, theta: float):
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    freqs = np.outer(np.arange(seq_len, dtype=np.float32), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return jnp.asarray(np.cos(emb)), jnp.asarray(np.sin(emb))


def apply_rope(x, cos, sin):
    """x: [..., seq, head_dim] (cos/sin: [seq, head_dim]); rotate-half convention (as the official/HF code).
    Computed in float32 and cast back, as the official apply_rotary_pos_emb does."""
    dtype = x.dtype
    x = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rotated * sin).astype(dtype)


def attention(q, k, v):
    """Non-causal softmax attention on [batch, heads, seq, head_dim] (the same math as
    `flax.linen.dot_product_attention`: query scaled by 1/sqrt(head_dim), softmax over keys).

    Heads-major layout makes both products canonical batched matmuls (batch dims leading,
    contraction last); with Flax's [batch, seq, heads, head_dim] einsums XLA:CPU picks slower
    layouts for the small per-head products (docs/performance.md has the measurement)."""
    q = q / jnp.sqrt(q.shape[-1]).astype(q.dtype)
    weights = jax.nn.softmax(jnp.einsum("bhqd,bhkd->bhqk", q, k), axis=-1)
    return jnp.einsum("bhqk,bhkd->bhqd", weights, v)


class Attention(nn.Module):
    num_heads: int
    rope_theta: float = 10000.0
    dtype: jnp.dtype = jnp.float32
    use_rope: bool = True

    @nn.compact
    def __call__(self, h):
        batch, seq, dim = h.shape
        head_dim = dim // self.num_heads
        qkv = nn.Dense(3 * dim, use_bias=False, kernel_init=_lecun, dtype=self.dtype, name="qkv")(h)
        # [batch, seq, (3, heads, head_dim)] -> [3, batch, heads, seq, head_dim]
        q, k, v = qkv.reshape(batch, seq, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
        if self.use_rope:  # over every position, puzzle prefix included (official RotaryEmbedding)
            cos, sin = rope_tables(seq, head_dim, self.rope_theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attention(q, k, v)  # non-causal: every position sees every other
        return nn.Dense(dim, use_bias=False, kernel_init=_lecun, dtype=self.dtype, name="out")(
            out.transpose(0, 2, 1, 3).reshape(batch, seq, dim))


class SwiGLU(nn.Module):
    expansion: float = 4.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h):
        dim = h.shape[-1]
        hidden = swiglu_hidden(dim, self.expansion)
        gate, up = jnp.split(
            nn.Dense(2 * hidden, use_bias=False, kernel_init=_lecun, dtype=self.dtype, name="gate_up")(h), 2, -1)
        return nn.Dense(dim, use_bias=False, kernel_init=_lecun, dtype=self.dtype, name="down")(nn.silu(gate) * up)


class TransformerNetwork(nn.Module):
    """Maps [batch, seq, dim] -> [batch, seq, dim] with `depth` post-norm blocks (the official `L_level`).

    Each block: attention with RoPE (or, with `mlp_t`, a SwiGLU across the sequence axis) and a SwiGLU
    MLP, each a residual followed by a weightless RMSNorm. Params per block: `block{i}_attention` (qkv,
    out) or `block{i}_mlp_t` (gate_up, down), and `block{i}_mlp` (gate_up, down).

    Args:
        dim: Feature width (the model's `dim`).
        depth: Blocks.
        num_heads: Attention heads; `dim` must divide by it.
        mlp_expansion: SwiGLU width = 2/3 * mlp_expansion * dim, rounded up to a multiple of 256.
        rope_theta: Rotary embedding base.
        dropout: Dropout rate (training only).
        dtype: Compute dtype (the parameters stay float32).
        mlp_t: Replace attention by a SwiGLU across the sequence axis of `seq_len` positions, whose
            residual is RMS-normalised over the sequence axis, as the official block does on its
            transposed layout (the official Sudoku MLP recipe).
        seq_len: Positions, puzzle prefix included; needed by `mlp_t` (its weights are sized by it).
        use_rope: False leaves attention without positions (official `pos_encodings` "learned" or "none").
        rms_norm_eps: RMSNorm epsilon.

    Raises:
        ConfigError: `dim` does not divide by `num_heads` (attention only).
    """

    dim: int
    depth: int
    num_heads: int
    mlp_expansion: float = 4.0
    rope_theta: float = 10000.0
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32
    mlp_t: bool = False
    seq_len: Optional[int] = None  # positions incl. the puzzle prefix; needed by mlp_t (its weights' size)
    use_rope: bool = True
    rms_norm_eps: float = 1e-5

    def __post_init__(self):
        super().__post_init__()
        if not self.mlp_t and self.dim % self.num_heads:
            raise ConfigError(f"TransformerNetwork: dim {self.dim} is not divisible by num_heads {self.num_heads}")

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        if h.shape[-1] != self.dim:
            raise ValueError(f"TransformerNetwork(dim={self.dim}) expects [batch, seq, {self.dim}], got {h.shape}")
        if self.mlp_t and self.seq_len is not None and h.shape[1] != self.seq_len:
            raise ValueError(f"TransformerNetwork(mlp_t, seq_len={self.seq_len}) expects {self.seq_len} positions "
                             f"(prefix included), got {h.shape[1]}")
        eps = self.rms_norm_eps
        drop = lambda a: nn.Dropout(self.dropout)(a, deterministic=deterministic)  # noqa: E731
        for i in range(self.depth):
            if self.mlp_t:
                t = h.transpose(0, 2, 1)  # [batch, dim, seq]: mix positions, normalise over the sequence axis
                m = SwiGLU(self.mlp_expansion, self.dtype, name=f"block{i}_mlp_t")(t)
                h = rms_norm(t + drop(m), eps).transpose(0, 2, 1)
            else:
                a = Attention(self.num_heads, self.rope_theta, self.dtype, self.use_rope, name=f"block{i}_attention")(h)
                h = rms_norm(h + drop(a), eps)
            m = SwiGLU(self.mlp_expansion, self.dtype, name=f"block{i}_mlp")(h)
            h = rms_norm(h + drop(m), eps)
        return h
