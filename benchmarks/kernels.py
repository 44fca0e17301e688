"""Timed kernels: the matmul peak of each framework and the matmul-only floor of a network
application (each of its matmuls, and the two products of their backward pass, timed alone in XLA)."""

from __future__ import annotations

from benchmarks.flops import backward_einsums, einsum_flops, net_matmuls
from benchmarks.harness import BenchConfig, best_time


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
    return 2 * n ** 3 / best_time(run, reps) / 1e9


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
    return 1e3 * best_time(lambda: jax.block_until_ready(f(a, b)), 3) / (reps + 1)


def net_matmul_times(bc: BenchConfig, seconds: float = 0.2) -> dict:
    """Each matmul of one network application (`net_matmuls`), and the two products of its backward
    pass, timed alone in XLA in the compute dtype: {"forward_ms", "backward_ms"} summed over the network. What one
    application would cost if it were nothing but its matmuls, each as fast as alone."""
    fwd = bwd = 0.0
    for _, eq, lhs, rhs in net_matmuls(bc):
        fwd += _time_einsum(eq, lhs, rhs, seconds, bc.dtype)
        bwd += sum(_time_einsum(*prod, seconds, bc.dtype) for prod in backward_einsums(eq, lhs, rhs))
    return {"forward_ms": fwd, "backward_ms": bwd}

