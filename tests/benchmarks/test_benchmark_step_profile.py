"""benchmarks.step_profile: the HLO parser and classifier that name each thunk of the profiled step, the
self-time of nested trace events, the grouping, and a tiny profile of both frameworks. No timing assertions."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks.step_profile import grouped, hlo_kind, hlo_phase, main, parse_hlo, self_times, torch_kind


def test_hlo_of_a_compiled_function_is_classified_by_what_it_computes():
    def f(w, x, s):
        h = x @ w
        h = h * (0.5 + 0.5 * jax.lax.erf(h * 0.7071)) + 1.0  # the erf GELU (trm_jax.models.layers.gelu_exact)
        mean = h.mean(-1, keepdims=True)
        h = (h - mean) * jax.lax.rsqrt(((h - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * s  # LayerNorm
        return jax.lax.fori_loop(0, 3, lambda i, a: a * 1.5 + 1.0, h).T.sum(0)  # a loop, a reduction

    args = (jnp.ones((32, 48)), jnp.ones((16, 32)), jnp.ones((48,)))
    hlo = parse_hlo(jax.jit(f).lower(*args).compile().as_text())
    kinds = {hlo_kind(info) for info in hlo.values()}
    assert {"matmul", "loop control"} <= kinds and kinds & {"LayerNorm", "reduction"}
    # the erf lands in its own fusion (GELU) or in the matmul's epilogue (matmul)
    assert any(hlo_kind(i) in ("GELU", "matmul") and "erf" in i["fused"] | {i["opcode"]} for i in hlo.values())
    assert all(set(i) >= {"opcode", "shape", "fused", "op_name"} for i in hlo.values())
    whiles = [i for i in hlo.values() if i["opcode"] == "while"]
    assert whiles and whiles[0]["shape"].startswith("(")  # tuple shapes parse
    # the one matmul, x [16, 32] @ w [32, 48]: 2 * 16 * 48 * 32 FLOPs, on the dot and on a fusion holding it
    assert max(i["dot_flops"] for i in hlo.values()) == 2 * 16 * 48 * 32


def test_phase_from_the_jax_op_name():
    assert hlo_phase("jit(train_step)/transpose(jvp(jit(supervision_step)))/while/body/dot") == "backward"
    assert hlo_phase("jit(train_step)/jvp(jit(supervision_step))/while/body/closed_call/add").startswith("forward")
    assert hlo_phase("jit(train_step)/mul") == "optimizer + loss" and hlo_phase("") == "other"


def test_self_time_subtracts_nested_events_and_groups_sum_to_one():
    events = [dict(name="while", ts=0.0, dur=100.0), dict(name="dot", ts=10.0, dur=30.0),
              dict(name="add", ts=50.0, dur=20.0), dict(name="dot", ts=120.0, dur=5.0)]
    assert dict(self_times(events)) == {"while": 50.0, "dot": 35.0, "add": 20.0}
    ops = [dict(kind="matmul", phase="backward", ms=3.0), dict(kind="GELU", phase="backward", ms=1.0)]
    assert grouped(ops, "kind") == [("matmul", 3.0, 0.75), ("GELU", 1.0, 0.25)]
    assert torch_kind("aten::addmm") == "matmul" and torch_kind("aten::gelu_backward") == "GELU"
    assert torch_kind("aten::native_layer_norm") == "LayerNorm" and torch_kind("aten::add_") == "elementwise"


def test_tiny_profile_of_both_frameworks(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    res = main(["--dim", "16", "--depth", "1", "--num-latent-refinements", "1", "--num-refinement-blocks", "2",
                "--batch-size", "4", "--steps", "2", "--warmup", "1", "--top", "3"])
    jax_run, torch_run = res["runs"]
    assert jax_run["framework"] == "trm_jax" and torch_run["framework"] == "PyTorch"
    for run in res["runs"]:
        assert run["wall_ms"] > 0 and run["ops"] and all(o["ms"] >= 0 for o in run["ops"])
        assert any(o["kind"] == "matmul" for o in run["ops"])
    assert any(o["phase"] == "backward" for o in jax_run["ops"])
    assert "by kind: " in capsys.readouterr().out
