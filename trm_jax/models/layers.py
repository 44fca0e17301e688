"""Small building blocks shared by the networks: PyTorch-style init, norms, activations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

# checkpoint_name tags for remat policies (see recursion.py: remat_policy): the residual stream between
# sub-blocks and the input of the mixer's channel-mixing activation.
RESIDUAL = "residual"
CHANNEL_PRE_ACTIVATION = "channel_mixing_pre_activation"


def torch_linear_init(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weights and biases."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def truncated_normal_init(std: float):
    """Normal truncated at +-2 std, rescaled so the result has standard deviation `std` (JAX's
    truncated_normal; the official TRM code's trunc_normal_init_ reproduces it in PyTorch)."""
    return nn.initializers.truncated_normal(std)


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
    """GELU; exact (erf) by default, as torch.nn.GELU(); `approximate` uses the tanh form."""
    if approximate:
        return jax.nn.gelu(x, approximate=True)
    return gelu_exact(x)


_SQRT_HALF = float(np.sqrt(0.5))
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


@jax.custom_jvp
def gelu_exact(x):
    """x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): PyTorch's formula.

    `jax.nn.gelu(approximate=False)` goes through `erfc`, which XLA expands into two branches with
    `exp` and selects, and its autodiff keeps several full-size intermediates. Here the forward is one
    erf polynomial, and the derivative Phi(x) + x phi(x) is formed in the same elementwise pass, so
    the backward is a single multiply by a saved coefficient.
    """
    return x * (0.5 + 0.5 * jax.lax.erf(x * _SQRT_HALF))


@gelu_exact.defjvp
def _gelu_exact_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    cdf = 0.5 + 0.5 * jax.lax.erf(x * _SQRT_HALF)
    slope = cdf + x * (_INV_SQRT_2PI * jnp.exp(-0.5 * x * x))
    return x * cdf, slope * t


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
