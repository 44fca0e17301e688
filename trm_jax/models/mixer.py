"""MLPMixer1D, numerically equivalent to `tiny_recursive_model.MLPMixer1D` (PyTorch).

Each block is two pre-norm residual branches:
  token mixing   : LayerNorm(no bias) -> dense over the sequence axis (seq_len -> expansion_factor*dim)
                   -> GELU -> dense back (-> seq_len)
  channel mixing : LayerNorm(no bias) -> dense over features (dim -> expansion_factor_token*dim)
                   -> GELU -> dense back (-> dim)
followed by a final LayerNorm. The PyTorch version does token mixing with a kernel-1 Conv1d whose
channels are the sequence positions; here it is one einsum contracting the sequence axis, which XLA
lowers to a single matmul without transposing the activations.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from trm_jax.models.layers import TorchDense, gelu, layer_norm_no_bias, torch_linear_init


class TokenMixing(nn.Module):
    seq_len: int
    hidden: int
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        # kernels laid out (in, out) like Dense; "bnd,nh->bhd" contracts the sequence axis in place
        w_in = self.param("in_kernel", torch_linear_init(self.seq_len), (self.seq_len, self.hidden))
        b_in = self.param("in_bias", torch_linear_init(self.seq_len), (self.hidden,))
        w_out = self.param("out_kernel", torch_linear_init(self.hidden), (self.hidden, self.seq_len))
        b_out = self.param("out_bias", torch_linear_init(self.hidden), (self.seq_len,))
        dt = self.dtype
        a = jnp.einsum("bnd,nh->bhd", h.astype(dt), w_in.astype(dt)) + b_in.astype(dt)[:, None]
        a = gelu(a, self.approximate_gelu)
        a = nn.Dropout(self.dropout)(a, deterministic=deterministic)
        out = jnp.einsum("bhd,hn->bnd", a, w_out.astype(dt)) + b_out.astype(dt)[:, None]
        return nn.Dropout(self.dropout)(out, deterministic=deterministic)


class ChannelMixing(nn.Module):
    hidden: int
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        dim = h.shape[-1]
        a = gelu(TorchDense(self.hidden, dtype=self.dtype, name="in")(h), self.approximate_gelu)
        a = nn.Dropout(self.dropout)(a, deterministic=deterministic)
        out = TorchDense(dim, dtype=self.dtype, name="out")(a)
        return nn.Dropout(self.dropout)(out, deterministic=deterministic)


class MLPMixer1D(nn.Module):
    """Maps [batch, seq_len, dim] -> [batch, seq_len, dim]."""

    dim: int
    depth: int
    seq_len: int
    expansion_factor: float = 4.0
    expansion_factor_token: float = 0.5
    dropout: float = 0.0
    approximate_gelu: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        if h.shape[-2:] != (self.seq_len, self.dim):
            raise ValueError(f"MLPMixer1D expects [..., {self.seq_len}, {self.dim}] inputs, got {h.shape}")
        ones = nn.initializers.ones
        for i in range(self.depth):
            scale = self.param(f"block{i}_token_norm", ones, (self.dim,))
            h = h + TokenMixing(self.seq_len, int(self.expansion_factor * self.dim), self.dropout,
                                self.approximate_gelu, self.dtype, name=f"block{i}_token_mixing")(
                layer_norm_no_bias(h, scale), deterministic)
            scale = self.param(f"block{i}_channel_norm", ones, (self.dim,))
            h = h + ChannelMixing(int(self.expansion_factor_token * self.dim), self.dropout,
                                  self.approximate_gelu, self.dtype, name=f"block{i}_channel_mixing")(
                layer_norm_no_bias(h, scale), deterministic)
        return layer_norm_no_bias(h, self.param("final_norm", ones, (self.dim,)))
