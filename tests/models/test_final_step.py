"""final_step (final-step supervision's forward, after the Recursive Stem Model): its values equal a
supervision step from the initial carry, and its gradient equals a hand-written Python recursion that cuts the
gradient before the last cycle (transition=False) or before the previous cycle's answer update
(transition=True), with the transition as a Python bool or a traced one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig
from trm_jax.models import init_params, initial_carry, make_model, supervision_step, token_cross_entropy
from trm_jax.models.recursion import final_step

SEQ, VOCAB, IDS = 8, 7, 3
sg = jax.lax.stop_gradient


def tiny(variant, T=3):
    kw = dict(network="mixer", num_register_tokens=1) if variant == "pypi" else dict(
        network="transformer", variant="official", num_puzzle_identifiers=IDS, puzzle_emb_ndim=16)
    cfg = ModelConfig(dim=16, depth=1, num_heads=2, num_refinement_blocks=T, num_latent_refinements=2, **kw)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    rs = np.random.RandomState(1)
    toks = jnp.asarray(rs.randint(0, VOCAB, (4, SEQ)), jnp.int32)
    labels = jnp.asarray(rs.randint(0, VOCAB, (4, SEQ)), jnp.int32)
    ids = jnp.asarray(rs.randint(0, IDS, 4), jnp.int32) if variant == "official" else None
    return model, params, toks, labels, ids


def reference_logits(model, params, toks, ids, delta, transition):
    """T cycles in Python, one network call at a time: every cycle but the last on detached inputs and
    parameters; with `transition`, the answer update of cycle T-2 uses live parameters (its inputs detached)."""
    apply = lambda p, method, *a: model.apply({"params": p}, *a, method=method)  # noqa: E731
    T, n = model.num_refinement_blocks, model.num_latent_refinements
    x = apply(params, "embed", toks, ids, delta)
    y, z = apply(params, "initial_carry", toks.shape[0])
    for cycle in range(T):
        last = cycle == T - 1
        if not last:
            y, z = sg(y), sg(z)
        p, xc = (params, x) if last else (sg(params), sg(x))
        for _ in range(n):
            z = apply(p, "net", xc + y + z)
        y = apply(params if last or (transition and cycle == T - 2) else p, "net", y + z)
    return apply(params, "heads", y)[0]


def loss_of(logits, labels):
    return token_cross_entropy(logits, labels).mean()


@pytest.mark.parametrize("variant", ["pypi", "official"])
def test_forward_equals_a_supervision_step_from_the_initial_carry(variant):
    model, params, toks, _, ids = tiny(variant)
    # each side compiled whole (op by op, every primitive compiles on its own: slower)
    ref = jax.jit(lambda p, c: supervision_step(model, p, toks, c, puzzle_ids=ids))(
        params, initial_carry(model, params, 4))
    forward = lambda p, t: final_step(model, p, toks, puzzle_ids=ids, transition=t)  # noqa: E731
    constant, traced = jax.jit(forward, static_argnums=1), jax.jit(forward)
    for transition, fn in ((False, constant), (True, constant), (jnp.bool_(True), traced)):
        out = fn(params, transition)
        np.testing.assert_allclose(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.halt_logits, ref.halt_logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.carry.y, ref.carry.y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant, T", [("official", 3), ("pypi", 2)])  # T=2: no warm-up cycle
def test_gradient_equals_the_reference_recursion(variant, T):
    model, params, toks, labels, ids = tiny(variant, T)
    delta = None if ids is None else jnp.zeros((4, model.puzzle_emb_ndim))  # the puzzle rows' gradient

    def ours(p, d, transition):
        return loss_of(final_step(model, p, toks, puzzle_ids=ids, puzzle_delta=d, transition=transition).logits,
                       labels)

    def reference(p, d, transition):
        return loss_of(reference_logits(model, p, toks, ids, d, transition), labels)

    traced = jax.jit(jax.grad(ours, argnums=(0, 1)))  # transition a traced bool: one program for both
    grads = {}
    for transition in (False, True):
        want = jax.jit(jax.grad(reference, argnums=(0, 1)), static_argnums=2)(params, delta, transition)
        got = jax.jit(jax.grad(ours, argnums=(0, 1)), static_argnums=2)(params, delta, transition)
        got_traced = traced(params, delta, jnp.bool_(transition))
        for g in (got, got_traced):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), g, want)
        grads[transition] = got
    assert traced._cache_size() == 1
    # the transition's extra path changes the network's gradient (not the edges': heads, embedding, init)
    net_differs = jax.tree.map(lambda a, b: not np.allclose(a, b, rtol=1e-3, atol=1e-7), grads[False][0],
                               grads[True][0])
    assert any(jax.tree.leaves(net_differs))
    # and it is not the full gradient through every cycle either
    full = jax.jit(jax.grad(lambda p: loss_of(full_logits(model, p, toks, ids), labels)))(params)
    assert any(jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b, rtol=1e-3, atol=1e-7),
                                            full, grads[True][0])))


def full_logits(model, params, toks, ids):
    apply = lambda method, *a: model.apply({"params": params}, *a, method=method)  # noqa: E731
    x = apply("embed", toks, ids)
    y, z = apply("initial_carry", toks.shape[0])
    for _ in range(model.num_refinement_blocks):
        for _ in range(model.num_latent_refinements):
            z = apply("net", x + y + z)
        y = apply("net", y + z)
    return apply("heads", y)[0]


def test_the_outgoing_carry_is_cut_and_the_edges_get_the_last_cycles_gradient():
    model, params, toks, labels, _ = tiny("pypi")

    def carry_sum(p):
        return final_step(model, p, toks, transition=True).carry.y.sum()

    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(jax.grad(carry_sum)(params)))
    g = jax.grad(lambda p: loss_of(final_step(model, p, toks).logits, labels))(params)
    assert float(jnp.abs(g["input_embed"]["embedding"]).max()) > 0  # x enters the last cycle's latent updates
    # the learned initial states enter only detached cycles (T >= 2): no gradient, as in deep supervision
    assert float(jnp.abs(g["output_init_embed"]).max()) == 0 and float(jnp.abs(g["latent_init_embed"]).max()) == 0


def _grad_temp_bytes(T):
    model, params, toks, labels, _ = tiny("pypi", T)

    def loss(p, transition):
        return loss_of(final_step(model, p, toks, transition=transition).logits, labels)

    compiled = jax.jit(jax.grad(loss)).lower(params, jnp.bool_(True)).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_training_memory_does_not_grow_with_the_number_of_cycles():
    # the warm-up cycles keep no residuals: T=8 needs what T=3 needs (the last cycle and one transition update)
    mem3, mem8 = _grad_temp_bytes(3), _grad_temp_bytes(8)
    assert mem8 <= mem3 * 1.1, (mem3, mem8)
