"""The model benchmark (`scripts/benchmark.py model`): the FLOP formula against XLA's count, the
bfloat16 option, the PyTorch transformer used as reference, the width summary, its options, and one tiny
run of both frameworks at two widths. No timing assertions."""

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _benchmark_runs import printed
from _scripts import load_script

from benchmarks import model as model_benchmark
from benchmarks.flops import (backward_einsums, einsum_flops, jax_net_cost_flops, net_flops, net_matmuls,
                              train_step_flops, xla_cost_flops)
from benchmarks.harness import BenchConfig, config_from_args
from benchmarks.jax_step import build_jax
from benchmarks.model import QUICK, REFERENCE, TRAIN_STEP_TARGETS, add_model_arguments, width_summary
from benchmarks.model_workers import time_frameworks
from benchmarks.torch_reference import build_torch
from trm_jax.models import supervision_step



def _bench(network: str, **kw) -> BenchConfig:
    """"mlp_t": the transformer with a SwiGLU across the sequence (the official Sudoku MLP recipe)."""
    return BenchConfig(network="transformer" if network == "mlp_t" else network, mlp_t=network == "mlp_t", **kw)


@pytest.mark.parametrize("network", ["mixer", "transformer", "mlp_t"])
def test_flop_formula_agrees_with_xla_cost_analysis(network):
    bc = _bench(network, dim=64, depth=1, seq_len=16, batch_size=4)
    analytic, xla = net_flops(bc), jax_net_cost_flops(bc)
    assert xla is not None
    # XLA also counts elementwise work (GELU, norms, softmax), so it is a little higher
    assert analytic <= xla <= 1.3 * analytic, (analytic, xla)
    # the step: T*(n+1) forward applications plus backward (2x) of the last cycle's n+1
    n, T = bc.num_latent_refinements, bc.num_refinement_blocks
    assert train_step_flops(bc) == pytest.approx((T * (n + 1) + 2 * (n + 1)) * analytic, rel=0.01)


@pytest.mark.parametrize("network", ["mixer", "transformer", "mlp_t"])
def test_backward_products_of_the_matmul_floor_are_the_gradients(network):
    """The matmul-only floor times, for every forward matmul, the two products of its backward pass:
    they must be the actual gradients (same values as autodiff) with the forward's FLOPs each."""
    bc = _bench(network, dim=16, depth=1, seq_len=5, batch_size=3)
    for i, (name, eq, lhs, rhs) in enumerate(net_matmuls(bc)):
        a = jax.random.normal(jax.random.key(i), lhs)
        b = jax.random.normal(jax.random.key(100 + i), rhs)
        out, vjp = jax.vjp(lambda a, b: jnp.einsum(eq, a, b), a, b)
        g = jax.random.normal(jax.random.key(200 + i), out.shape)
        (eq_a, _, _), (eq_b, _, _) = backward_einsums(eq, lhs, rhs)
        da, db = vjp(g)
        np.testing.assert_allclose(jnp.einsum(eq_a, g, b), da, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(jnp.einsum(eq_b, a, g), db, rtol=1e-5, atol=1e-5, err_msg=name)
        for e, x, y in backward_einsums(eq, lhs, rhs):
            assert einsum_flops(e, x, y) == einsum_flops(eq, lhs, rhs)


def test_benchmark_dtype_option_runs_the_step_in_bfloat16():
    bc = BenchConfig(dim=16, depth=1, seq_len=5, batch_size=3, num_latent_refinements=1, num_refinement_blocks=2)
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model, params, opt_state, step, tokens, labels, carry = build_jax(dataclasses.replace(bc, dtype=dtype))
        assert model.dtype == dtype and dtype in dataclasses.replace(bc, dtype=dtype).label()
        hlo = jax.jit(lambda p: supervision_step(model, p, tokens, carry)).lower(params).as_text()
        assert ("bf16" in hlo) == (dtype == "bfloat16")  # the network computes in the chosen dtype
        losses[dtype] = float(step(params, opt_state, carry, tokens, labels)[3])
    # same weights, lower precision: close but not identical
    assert losses["bfloat16"] != losses["float32"]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.05)


@pytest.mark.parametrize("network", ["mixer", "transformer", "mlp_t"])
def test_train_step_flop_formula_agrees_with_xla_cost_analysis_of_the_step(network):
    """`train_step_flops` against XLA's count of the compiled benchmark step (forward, backward, AdamW).
    XLA counts a loop body once, so the latent scan is unrolled (scan_unroll = n) and T = 2 (the
    no-gradient cycle loop runs once); remat off, as the formula counts no recomputation. The
    marginal cost of more latent refinements isolates the formula's n-dependence."""
    flops = {}
    for n in (1, 3):
        bc = _bench(network, dim=64, depth=1, seq_len=16, batch_size=4, num_latent_refinements=n,
                    num_refinement_blocks=2, remat="none", scan_unroll=n)
        _, params, opt_state, step, tokens, labels, carry = build_jax(bc)
        xla = xla_cost_flops(step.lower(params, opt_state, carry, tokens, labels).compile())
        assert xla is not None
        flops[n] = (train_step_flops(bc), xla)
        # XLA also counts elementwise work and the optimizer update, so it is a little higher
        assert flops[n][0] <= xla <= 1.3 * flops[n][0], (n, flops[n])
    analytic_extra, xla_extra = flops[3][0] - flops[1][0], flops[3][1] - flops[1][1]
    assert analytic_extra <= xla_extra <= 1.3 * analytic_extra, flops


def test_torch_transformer_reference_matches_ours():
    """The benchmark's PyTorch transformer network is the same architecture as ours: same outputs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    bc = BenchConfig(network="transformer", dim=32, depth=2, seq_len=9, batch_size=3, num_latent_refinements=2,
                     num_refinement_blocks=2)
    tm, _, seq, labels = build_torch(bc)
    model, params, _, _, tokens, _, carry = build_jax(bc, tm.state_dict())
    with torch.no_grad():
        _, _, _, _, pred, halt = tm(seq, *tm.get_initial(), labels=labels)
    out = supervision_step(model, params, jnp.asarray(seq.numpy(), jnp.int32), carry)
    np.testing.assert_allclose(out.logits, pred.numpy(), rtol=2e-4, atol=2e-4)


MODEL_RUN = ["model", "--widths", "8,16", "--depth", "1", "--seq-len", "9", "--batch-size", "4",
             "--num-latent-refinements", "1", "--num-refinement-blocks", "2", "--iters", "1", "--predict-steps", "2",
             "--predict-iters", "1"]


@pytest.fixture()
def model_run(once, tmp_path_factory):
    """`scripts/benchmark.py model` at two tiny widths, both frameworks: {"out": printed, "json": --json's}."""
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")

    def tiny_peak(spec, *args):  # the workers' matmul peak at 64^2 timed once, not 2048^2 five times
        return time_frameworks({**spec, "peak_args": {"n": 64, "reps": 1}}, *args)

    def run():
        path = tmp_path_factory.mktemp("model_run") / "model.json"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(model_benchmark, "time_frameworks", tiny_peak)
            res = printed(load_script("benchmark").main, ["--json", str(path), *MODEL_RUN])
        return dict(res, json=json.loads(path.read_text()))
    return once("model_benchmark", run)


def test_model_run_prints_each_widths_times_and_ratios(model_run):
    out, res = model_run["out"], model_run["json"]
    for dim in (8, 16):
        assert f"dim={dim} " in out
        assert set(res["widths"][str(dim)]["time"]) >= {"jax_train", "torch_train", "jax_predict", "torch_predict"}
    assert out.count("train step (s) wall") == 2 and out.count("predict, 2 steps (s) wall") == 2
    assert "% of XLA peak" in out and "matmul peak" in out and "matmul-only floor" in out
    # --widths: train and predict unless --parts says more
    assert "compile n=" not in out and "peak memory" not in out


def test_model_run_summarises_one_row_per_width(model_run):
    out, res = model_run["out"], model_run["json"]
    assert [r["dim"] for r in res["summary"]] == [8, 16] and set(res["widths"]) == {"8", "16"}
    for r in res["summary"]:
        assert r["jax_train"] > 0 and r["torch_train"] > 0 and r["train_ratio"] > 0 and r["predict_ratio"] > 0
    assert "== summary" in out


def test_model_options_are_the_config_fields_and_quick_takes_them_too():
    p = argparse.ArgumentParser()
    add_model_arguments(p)
    assert config_from_args(p.parse_args([]), REFERENCE, QUICK) == REFERENCE
    args = p.parse_args(["--num-latent-refinements", "2", "--num-refinement-blocks", "4", "--num-tokens", "12",
                         "--batch-size", "8", "--num-heads", "2", "--network", "transformer"])
    assert config_from_args(args, REFERENCE, QUICK) == dataclasses.replace(
        REFERENCE, num_latent_refinements=2, num_refinement_blocks=4, num_tokens=12, batch_size=8, num_heads=2,
        network="transformer")
    quick = config_from_args(p.parse_args(["--quick", "--dim", "48", "--gelu-approximate"]), REFERENCE, QUICK)
    assert quick == dataclasses.replace(QUICK, dim=48, gelu_approximate=True)
    for old in (["--n", "2"], ["--T", "2"], ["--vocab", "11"]):  # the package's names only
        with pytest.raises(SystemExit):
            p.parse_args(old)


def _timed(jax_s, torch_s):
    return {"time": {"jax_train": [(jax_s, jax_s)], "torch_train": [(torch_s, torch_s), (2 * torch_s, 0)],
                     "jax_predict": [(1.0, 1.0)], "torch_predict": [(1.5, 1.5)]}}


def test_width_summary_gives_each_widths_ratios_and_its_target():
    bc = BenchConfig(num_latent_refinements=2, num_refinement_blocks=2)
    rows = width_summary({64: _timed(0.1, 0.2), 128: _timed(0.4, 0.5), 96: _timed(1.0, 1.0)}, bc)
    assert [r["dim"] for r in rows] == [64, 128, 96]
    assert rows[0]["train_ratio"] == pytest.approx(2.0) and rows[0]["met"] is True  # best (fastest) PyTorch step
    assert rows[1]["train_ratio"] == pytest.approx(1.25) and rows[1]["met"] is False
    assert rows[0]["target"] == TRAIN_STEP_TARGETS[64] and rows[2]["target"] is None and rows[2]["met"] is None
    assert rows[0]["predict_ratio"] == pytest.approx(1.5)
    # the targets are stated for n=2..3, T=2 only
    assert all(r["target"] is None for r in width_summary({64: _timed(0.1, 0.2)}, BenchConfig()))
