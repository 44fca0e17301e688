"""Small building blocks shared by the networks: PyTorch-style init, norms, activations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn


def torch_linear_init(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """Dense layer with PyTorch's default initialisation (so training dynamics match the reference)."""

    features: int
    use_bias: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_linear_init(fan_in), (fan_in, self.features))
        y = jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            y = y + self.param("bias", torch_linear_init(fan_in), (self.features,)).astype(self.dtype)
        return y


def gelu(x, approximate: bool):
    return jax.nn.gelu(x, approximate=approximate)


def layer_norm_no_bias(x, scale, eps: float = 1e-5):
    """LayerNorm over the last axis with a learned scale and no bias (torch LayerNorm(bias=False))."""
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps) * scale).astype(x.dtype)


def rms_norm(x, eps: float = 1e-5):
    """Parameter-free RMSNorm, as the official TRM code uses after each residual."""
    x32 = x.astype(jnp.float32)
    return (x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)).astype(x.dtype)
