"""benchmarks.adaptation: its FLOP count of an adaptation step against the train-step formula."""

import numpy as np
import pytest

from benchmarks.adaptation import ARC_SEQ_LEN, arc_model, step_flops
from benchmarks.flops import head_flops, net_matmuls, train_step_flops
from benchmarks.harness import BenchConfig


def test_adaptation_flops_match_the_train_step_formula():
    """A step with weight gradients counts as benchmarks.flops counts a train step; an embeddings-only step
    drops exactly the weight-gradient products of the weight matmuls (and of the output head)."""
    _, cfg = arc_model(128, "float32", 4)
    bc = BenchConfig.from_model(cfg, ARC_SEQ_LEN, 8)
    assert (bc.network, bc.seq_len, bc.num_heads) == ("transformer", 900 + cfg.puzzle_emb_len, cfg.num_heads)
    assert step_flops(cfg, 8, dense=True) == pytest.approx(train_step_flops(bc))
    weights = sum(2 * np.prod(a) * b[-1] for name, _, a, b in net_matmuls(bc)
                  if not any(k in name for k in ("scores", "weighted sum")))
    skipped = (cfg.num_latent_refinements + 1) * weights + head_flops(bc)
    assert step_flops(cfg, 8, dense=False) == pytest.approx(train_step_flops(bc) - skipped)
