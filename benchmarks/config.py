"""The benchmarked configuration: architecture, work per step and compute knobs of both frameworks."""

from __future__ import annotations

from dataclasses import dataclass


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
    scan_unroll: int = 1  # ModelConfig.scan_unroll (tests unroll the latent scan for XLA's cost analysis)
    mlp_t: bool = False  # transformer: a SwiGLU across the sequence replaces attention (official Sudoku MLP recipe)

    @property
    def heads(self) -> int:
        return self.num_heads or max(1, self.dim // 64)

    def label(self) -> str:
        net = self.network + ("" if self.network == "mixer" else " mlp_t" if self.mlp_t else f" heads={self.heads}")
        return (f"{net} dim={self.dim} depth={self.depth} seq_len={self.seq_len} vocab={self.vocab} "
                f"n={self.n} T={self.T} batch={self.batch} {self.dtype}")


REFERENCE = BenchConfig()
QUICK = BenchConfig(dim=64, batch=16, n=2, T=2)


def model_config(bc: BenchConfig):
    """The trm_jax `ModelConfig` of `bc`."""
    from trm_jax.config import ModelConfig

    return ModelConfig(network=bc.network, dim=bc.dim, depth=bc.depth, num_heads=bc.heads, num_tokens=bc.vocab,
                       num_refinement_blocks=bc.T, num_latent_refinements=bc.n,
                       gelu_approximate=bc.gelu_approximate, remat=bc.remat, dtype=bc.dtype,
                       scan_unroll=bc.scan_unroll, mlp_t=bc.mlp_t)
