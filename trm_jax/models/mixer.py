"""MLPMixer1D, numerically equivalent to `tiny_recursive_model.MLPMixer1D` (PyTorch).

Each block is two pre-norm residual branches:
  token mixing   : LayerNorm(no bias) -> dense over the sequence axis (seq_len -> expansion_factor*dim)
                   -> GELU -> dense back (-> seq_len)
  channel mixing : LayerNorm(no bias) -> dense over features (dim -> expansion_factor_token*dim)
                   -> GELU -> dense back (-> dim)
followed by a final LayerNorm. The PyTorch version does token mixing with a kernel-1 Conv1d whose
channels are the sequence positions.

Layout: internally the activations are sequence-first, [seq, batch, dim]. Then both mixings are plain
2-D matrix products with no data movement: token mixing is W^T [hidden, seq] @ h [seq, batch*dim],
channel mixing is h [seq*batch, dim] @ W [dim, hidden]; in either direction of backprop too. With
the batch-first layout XLA has to transpose the [batch, 4*dim, dim] hidden activations around every
token-mixing matmul (docs/performance.md has the measurement). `__call__` takes batch-first input
by default; callers that keep their state sequence-first (TinyRecursiveModel) pass `seq_first=True`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.ad_checkpoint import checkpoint_name

from trm_jax.models.layers import (CHANNEL_PRE_ACTIVATION, RESIDUAL, TorchDense, gelu, layer_norm_no_bias,
                                   torch_linear_init)


def _mix_seq(w, h):
    """[n_in, n_out] weight applied along the leading axis of h [n_in, b, d] -> [n_out, b, d]."""
    n_in, b, d = h.shape
    out = jax.lax.dot_general(w, h.reshape(n_in, b * d), (((0,), (0,)), ((), ())))
    return out.reshape(w.shape[1], b, d)


def _mix_seq_fwd(w, h):
    return _mix_seq(w, h), (w, h)


def _mix_seq_bwd(res, g):
    # Both products are written so that their outputs come out in the layout needed: 2-D GEMMs with
    # no transposes of the activations (JAX's default transpose rule yields [b*d, n] and a copy).
    w, h = res
    n_in, b, d = h.shape
    g2 = g.reshape(w.shape[1], b * d)
    dh = jax.lax.dot_general(w, g2, (((1,), (0,)), ((), ()))).reshape(h.shape)
    dw = jax.lax.dot_general(h.reshape(n_in, b * d), g2, (((1,), (1,)), ((), ())))
    return dw.astype(w.dtype), dh.astype(h.dtype)


mix_seq = jax.custom_vjp(_mix_seq)
mix_seq.defvjp(_mix_seq_fwd, _mix_seq_bwd)


class TokenMixing(nn.Module):
    seq_len: int
    hidden: int
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        """h: [seq, batch, dim] (sequence-first)."""
        # kernels laid out (in, out) like Dense; contracting their first axis with h's first axis gives
        # transposed-operand GEMMs [hidden, seq] @ [seq, batch*dim] (no activation transposes)
        w_in = self.param("in_kernel", torch_linear_init(self.seq_len), (self.seq_len, self.hidden))
        b_in = self.param("in_bias", torch_linear_init(self.seq_len), (self.hidden,))
        w_out = self.param("out_kernel", torch_linear_init(self.hidden), (self.hidden, self.seq_len))
        b_out = self.param("out_bias", torch_linear_init(self.hidden), (self.seq_len,))
        dt = self.dtype
        a = mix_seq(w_in.astype(dt), h.astype(dt)) + b_in.astype(dt)[:, None, None]
        a = gelu(a, self.approximate_gelu)  # recomputed in the backward pass (remat policy)
        a = nn.Dropout(self.dropout)(a, deterministic=deterministic)
        out = mix_seq(w_out.astype(dt), a) + b_out.astype(dt)[:, None, None]
        return nn.Dropout(self.dropout)(out, deterministic=deterministic)


class ChannelMixing(nn.Module):
    hidden: int
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        dim = h.shape[-1]
        a = TorchDense(self.hidden, dtype=self.dtype, name="in")(h)
        a = gelu(checkpoint_name(a, CHANNEL_PRE_ACTIVATION), self.approximate_gelu)
        a = nn.Dropout(self.dropout)(a, deterministic=deterministic)
        out = TorchDense(dim, dtype=self.dtype, name="out")(a)
        return nn.Dropout(self.dropout)(out, deterministic=deterministic)


class MLPMixer1D(nn.Module):
    """Maps [batch, seq_len, dim] -> [batch, seq_len, dim] ([seq_len, batch, dim] with seq_first=True).

    The PyPI package's network (`tiny_recursive_model.MLPMixer1D`), numerically equal: `depth` blocks of
    token mixing (across positions) and channel mixing (across features), each a pre-norm residual MLP,
    then a final LayerNorm.

    Args:
        dim: Feature width (the model's `dim`).
        depth: Blocks.
        seq_len: Positions per sample, register tokens or puzzle prefix included (its token-mixing weights
            are sized by it).
        expansion_factor: Token-mixing hidden width = expansion_factor * dim.
        expansion_factor_token: Channel-mixing hidden width = expansion_factor_token * dim.
        dropout: Dropout rate in both mixings (training only).
        approximate_gelu: The tanh GELU instead of the exact (erf) one PyTorch uses.
        dtype: Compute dtype (the parameters stay float32).
    """

    # declared to TinyRecursiveModel: it keeps the state sequence-first and calls with seq_first=True,
    # and the gradient cycle saves only these tagged activations (see recursion.py: remat_policy)
    seq_first_native = True
    remat_saveable_names = (RESIDUAL, CHANNEL_PRE_ACTIVATION)

    dim: int
    depth: int
    seq_len: int
    expansion_factor: float = 4.0
    expansion_factor_token: float = 0.5
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True, seq_first: bool = False):
        if not seq_first:  # [..., seq, dim] -> [seq, batch, dim]
            if h.ndim < 2 or h.shape[-2:] != (self.seq_len, self.dim):
                raise ValueError(f"MLPMixer1D expects [..., {self.seq_len}, {self.dim}] inputs, got {h.shape}")
            out = self(h.reshape((-1, self.seq_len, self.dim)).transpose(1, 0, 2), deterministic, seq_first=True)
            return out.transpose(1, 0, 2).reshape(h.shape)
        if h.ndim != 3 or (h.shape[0], h.shape[2]) != (self.seq_len, self.dim):
            raise ValueError(f"MLPMixer1D expects [{self.seq_len}, batch, {self.dim}] inputs (seq_first), "
                             f"got {h.shape}")
        ones = nn.initializers.ones
        for i in range(self.depth):
            scale = self.param(f"block{i}_token_norm", ones, (self.dim,))
            h = checkpoint_name(h, RESIDUAL)
            h = h + TokenMixing(self.seq_len, int(self.expansion_factor * self.dim), self.dropout,
                                self.approximate_gelu, self.dtype, name=f"block{i}_token_mixing")(
                layer_norm_no_bias(h, scale), deterministic)
            scale = self.param(f"block{i}_channel_norm", ones, (self.dim,))
            h = checkpoint_name(h, RESIDUAL)
            h = h + ChannelMixing(int(self.expansion_factor_token * self.dim), self.dropout,
                                  self.approximate_gelu, self.dtype, name=f"block{i}_channel_mixing")(
                layer_norm_no_bias(h, scale), deterministic)
        return layer_norm_no_bias(checkpoint_name(h, RESIDUAL), self.param("final_norm", ones, (self.dim,)))
