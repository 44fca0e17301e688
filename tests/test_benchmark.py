"""The model benchmark and the performance work behind it: FLOP formula, numerics of the optimised
paths (sequence-first mixer, custom token-mixing VJP, one-pass GELU, remat policies), the PyTorch
transformer used as reference, and a smoke run of `scripts/benchmark.py model`. No timing assertions."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _scripts import load_script

from benchmarks.config import BenchConfig
from benchmarks.flops import (backward_einsums, einsum_flops, jax_net_cost_flops, net_flops, net_matmuls,
                              train_step_flops, xla_cost_flops)
from benchmarks.jax_step import build_jax
from benchmarks.torch_reference import build_torch
from trm_jax.config import ModelConfig
from trm_jax.models import MLPMixer1D, compute_loss, init_params, initial_carry, make_model, supervision_step
from trm_jax.models.layers import gelu_exact
from trm_jax.models.mixer import mix_seq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(network: str, **kw) -> BenchConfig:
    """"mlp_t": the transformer with a SwiGLU across the sequence (the official Sudoku MLP recipe)."""
    return BenchConfig(network="transformer" if network == "mlp_t" else network, mlp_t=network == "mlp_t", **kw)


@pytest.mark.parametrize("network", ["mixer", "transformer", "mlp_t"])
def test_flop_formula_agrees_with_xla_cost_analysis(network):
    bc = _bench(network, dim=64, depth=1, seq_len=16, batch=4)
    analytic, xla = net_flops(bc), jax_net_cost_flops(bc)
    assert xla is not None
    # XLA also counts elementwise work (GELU, norms, softmax), so it is a little higher
    assert analytic <= xla <= 1.3 * analytic, (analytic, xla)
    # the step: T*(n+1) forward applications plus backward (2x) of the last cycle's n+1
    assert train_step_flops(bc) == pytest.approx((bc.T * (bc.n + 1) + 2 * (bc.n + 1)) * analytic, rel=0.01)


@pytest.mark.parametrize("network", ["mixer", "transformer", "mlp_t"])
def test_backward_products_of_the_matmul_floor_are_the_gradients(network):
    """The matmul-only floor times, for every forward matmul, the two products of its backward pass:
    they must be the actual gradients (same values as autodiff) with the forward's FLOPs each."""
    bc = _bench(network, dim=16, depth=1, seq_len=5, batch=3)
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
    bc = BenchConfig(dim=16, depth=1, seq_len=5, batch=3, n=1, T=2)
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
        bc = _bench(network, dim=64, depth=1, seq_len=16, batch=4, n=n, T=2, remat="none", scan_unroll=n)
        _, params, opt_state, step, tokens, labels, carry = build_jax(bc)
        xla = xla_cost_flops(step.lower(params, opt_state, carry, tokens, labels).compile())
        assert xla is not None
        flops[n] = (train_step_flops(bc), xla)
        # XLA also counts elementwise work and the optimizer update, so it is a little higher
        assert flops[n][0] <= xla <= 1.3 * flops[n][0], (n, flops[n])
    analytic_extra, xla_extra = flops[3][0] - flops[1][0], flops[3][1] - flops[1][1]
    assert analytic_extra <= xla_extra <= 1.3 * analytic_extra, flops


def test_sequence_first_mixer_equals_batch_first():
    mixer = MLPMixer1D(dim=16, depth=2, seq_len=5)
    h = jax.random.normal(jax.random.key(1), (3, 5, 16))
    params = mixer.init(jax.random.key(0), h)
    out = mixer.apply(params, h)
    out_sf = mixer.apply(params, h.transpose(1, 0, 2), seq_first=True)
    np.testing.assert_allclose(out_sf.transpose(1, 0, 2), out, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="seq_first"):
        mixer.apply(params, h, seq_first=True)


def test_token_mixing_vjp_matches_einsum():
    w = jax.random.normal(jax.random.key(0), (5, 7))
    h = jax.random.normal(jax.random.key(1), (5, 3, 4))
    ref = lambda w, h: jnp.einsum("nh,nbd->hbd", w, h)  # noqa: E731
    np.testing.assert_allclose(mix_seq(w, h), ref(w, h), rtol=1e-6)
    g = jax.random.normal(jax.random.key(2), (7, 3, 4))
    ours = jax.vjp(mix_seq, w, h)[1](g)
    theirs = jax.vjp(ref, w, h)[1](g)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gelu_exact_matches_torch_value_and_gradient():
    torch = pytest.importorskip("torch")
    x = np.linspace(-10, 10, 2001, dtype=np.float32)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(tx).sum().backward()
    np.testing.assert_allclose(gelu_exact(jnp.asarray(x)), torch.nn.functional.gelu(torch.tensor(x)).numpy(),
                               atol=2e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(gelu_exact))(jnp.asarray(x)), tx.grad.numpy(), atol=2e-6)


def _grads_and_temp(cfg, T=2):
    seq, vocab, batch = 6, 7, 3
    model = make_model(cfg, vocab, seq)
    params = init_params(model, jax.random.key(0))
    toks = jnp.asarray(np.random.RandomState(0).randint(0, vocab, (batch, seq)), jnp.int32)
    carry = initial_carry(model, params, batch)

    def loss(p):
        out = supervision_step(model, p, toks, carry)
        return compute_loss(out.logits, out.halt_logits, toks)[0].sum()

    fn = jax.jit(jax.grad(loss))
    temp = fn.lower(params).compile().memory_analysis().temp_size_in_bytes
    return fn(params), temp


@pytest.mark.parametrize("network", ["mixer", "transformer"])
def test_remat_modes_give_the_same_gradients(network):
    base = ModelConfig(network=network, dim=16, depth=1, num_heads=2, num_refinement_blocks=2,
                       num_latent_refinements=2)
    ref, temp_none = _grads_and_temp(dataclasses.replace(base, remat="none"))
    for mode in ("auto", "dots", "full"):
        g, temp = _grads_and_temp(dataclasses.replace(base, remat=mode))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g, ref)
        assert temp <= temp_none, (mode, temp, temp_none)


def test_torch_transformer_reference_matches_ours():
    """The benchmark's PyTorch transformer network is the same architecture as ours: same outputs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    bc = BenchConfig(network="transformer", dim=32, depth=2, seq_len=9, batch=3, n=2, T=2)
    tm, _, seq, labels = build_torch(bc)
    model, params, _, _, tokens, _, carry = build_jax(bc, tm.state_dict())
    with torch.no_grad():
        _, _, _, _, pred, halt = tm(seq, *tm.get_initial(), labels=labels)
    out = supervision_step(model, params, jnp.asarray(seq.numpy(), jnp.int32), carry)
    np.testing.assert_allclose(out.logits, pred.numpy(), rtol=2e-4, atol=2e-4)


def test_benchmark_script_runs_and_prints_ratios(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    script = load_script("benchmark")
    script.main(["model", "--dim", "16", "--depth", "1", "--seq-len", "9", "--batch", "4", "--n", "1", "--T", "2",
                 "--iters", "1", "--predict-steps", "2", "--predict-iters", "1", "--parts", "train,predict"])
    out = capsys.readouterr().out
    assert "train step (s) wall" in out and "predict, 2 steps (s) wall" in out and "x" in out
    assert "% of XLA peak" in out and "matmul peak" in out


def _timed(jax_s, torch_s):
    return {"time": {"jax_train": [(jax_s, jax_s)], "torch_train": [(torch_s, torch_s), (2 * torch_s, 0)],
                     "jax_predict": [(1.0, 1.0)], "torch_predict": [(1.5, 1.5)]}}


def test_width_summary_gives_each_widths_ratios_and_its_target():
    from benchmarks.model import TRAIN_STEP_TARGETS, width_summary

    bc = BenchConfig(n=2, T=2)
    rows = width_summary({64: _timed(0.1, 0.2), 128: _timed(0.4, 0.5), 96: _timed(1.0, 1.0)}, bc)
    assert [r["dim"] for r in rows] == [64, 128, 96]
    assert rows[0]["train_ratio"] == pytest.approx(2.0) and rows[0]["met"] is True  # best (fastest) PyTorch step
    assert rows[1]["train_ratio"] == pytest.approx(1.25) and rows[1]["met"] is False
    assert rows[0]["target"] == TRAIN_STEP_TARGETS[64] and rows[2]["target"] is None and rows[2]["met"] is None
    assert rows[0]["predict_ratio"] == pytest.approx(1.5)
    # the targets are stated for n=2..3, T=2 only
    assert all(r["target"] is None for r in width_summary({64: _timed(0.1, 0.2)}, BenchConfig(n=6, T=3)))


def test_benchmark_script_widths_prints_one_summary_row_per_width(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    script = load_script("benchmark")
    path = tmp_path / "widths.json"
    script.main(["--json", str(path), "model", "--widths", "8,16", "--depth", "1", "--seq-len", "9", "--batch", "4",
                 "--n", "1", "--T", "2", "--iters", "1", "--predict-steps", "2", "--predict-iters", "1"])
    out = capsys.readouterr().out
    res = __import__("json").loads(path.read_text())
    assert [r["dim"] for r in res["summary"]] == [8, 16] and set(res["widths"]) == {"8", "16"}
    for r in res["summary"]:
        assert r["jax_train"] > 0 and r["torch_train"] > 0 and r["train_ratio"] > 0 and r["predict_ratio"] > 0
    assert "== summary" in out and "dim=8 " in out and "dim=16 " in out
    assert "compile n=" not in out and "peak memory" not in out  # --widths: train and predict unless --parts says
