"""Model layer: shapes, recursion semantics, halting, gradient isolation, loss."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig
from trm_jax.models import (IGNORE_LABEL, MLPMixer1D, TinyRecursiveModel, TransformerNetwork, compute_loss, init_params,
                            initial_carry, latent_recursion, log_stablemax, make_model, predict, supervision_step)

SEQ, VOCAB, BATCH = 6, 7, 3


def small_cfg(**kw):
    base = dict(dim=16, depth=1, num_heads=2, num_refinement_blocks=2, num_latent_refinements=2,
                max_recursion_depth=4)
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(params=["mixer", "transformer"])
def network(request):
    return request.param


def tokens(batch=BATCH, seed=0):
    return jnp.asarray(np.random.RandomState(seed).randint(0, VOCAB, (batch, SEQ)), jnp.int32)


def test_networks_preserve_shape_and_dtype():
    h = jnp.ones((2, 5, 16))
    mixer = MLPMixer1D(dim=16, depth=2, seq_len=5)
    out = jax.jit(mixer.apply)(jax.jit(mixer.init)(jax.random.key(0), h), h)  # jit: one program, not one per op
    assert out.shape == h.shape and out.dtype == jnp.float32
    tr = TransformerNetwork(dim=16, depth=2, num_heads=2)
    out = jax.jit(tr.apply)(jax.jit(tr.init)(jax.random.key(0), h), h)
    assert out.shape == h.shape and out.dtype == jnp.float32
    # post-norm RMSNorm: every position has unit RMS
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(out ** 2, -1)), 1.0, rtol=1e-4)


def test_mixer_sizes_match_reference_layout():
    mixer = MLPMixer1D(dim=16, depth=1, seq_len=5, expansion_factor=4, expansion_factor_token=0.5)
    p = mixer.init(jax.random.key(0), jnp.ones((1, 5, 16)))["params"]
    assert p["block0_token_mixing"]["in_kernel"].shape == (5, 64)  # seq_len -> 4*dim
    assert p["block0_channel_mixing"]["in"]["kernel"].shape == (16, 8)  # dim -> dim/2
    with pytest.raises(ValueError, match="expects"):
        mixer.apply({"params": p}, jnp.ones((1, 6, 16)))


def test_model_shapes_and_pytree(network):
    cfg = small_cfg(network=network, num_register_tokens=2)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    leaves = jax.tree.leaves(params)
    assert leaves and all(isinstance(a, jax.Array) and a.dtype == jnp.float32 for a in leaves)
    doubled = jax.tree.map(lambda a: 2 * a, params)
    assert jax.tree.structure(doubled) == jax.tree.structure(params)
    carry = initial_carry(model, params, BATCH)
    assert carry.y.shape == carry.z.shape == (BATCH, SEQ + 2, 16)
    out = supervision_step(model, params, tokens(), carry)
    assert out.logits.shape == (BATCH, SEQ, VOCAB) and out.logits.dtype == jnp.float32
    assert out.halt_logits.shape == (BATCH,)
    assert out.carry.y.shape == carry.y.shape
    # zero-initialised halt head: p(halt) = 0.5 everywhere at init
    np.testing.assert_allclose(out.halt_logits, 0.0)
    pred = predict(model, params, tokens())
    assert pred.tokens.shape == (BATCH, SEQ) and pred.tokens.dtype == jnp.int32
    assert pred.recursion_depth.shape == (BATCH,)


def test_parameter_tree_is_flat_with_each_variants_edge_names():
    """Checkpoint import/export and saved runs read these names: the edges live on the model itself."""
    pypi = init_params(make_model(small_cfg(num_register_tokens=2), VOCAB, SEQ), jax.random.key(0))
    assert set(pypi) == {"input_embed", "output_init_embed", "latent_init_embed", "register_tokens", "to_pred",
                         "to_halt_pred", "network"}
    assert pypi["register_tokens"].shape == (2, 16) and pypi["to_halt_pred"]["kernel"].shape == (16, 1)
    official = make_model(small_cfg(variant="official", network="transformer", puzzle_emb_ndim=20,
                                    num_puzzle_identifiers=3, pos_encodings="learned"), VOCAB, SEQ)
    params = init_params(official, jax.random.key(0))
    assert set(params) == {"embed_tokens", "puzzle_emb", "embed_pos", "H_init", "L_init", "lm_head", "q_head",
                           "network"}
    assert params["embed_pos"]["embedding"].shape == (SEQ + 2, 16)  # two prefix positions: ceil(20 / 16)
    assert params["q_head"]["kernel"].shape == (16, 2) and params["puzzle_emb"].shape == (3, 20)


def test_bfloat16_compute_keeps_float32_params():
    model = make_model(small_cfg(dtype="bfloat16"), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))
    out = supervision_step(model, params, tokens(), initial_carry(model, params, BATCH))
    assert np.isfinite(np.asarray(out.logits, np.float32)).all()


def _randomise_halt_head(params, seed=1, scale=3.0):
    params = jax.tree.map(lambda a: a, params)
    k = params["to_halt_pred"]["kernel"]
    params["to_halt_pred"]["kernel"] = scale * jax.random.normal(jax.random.key(seed), k.shape)
    return params


def reference_predict(model, params, toks, threshold, max_depth):
    """Plain Python loop: one supervision step at a time, freezing samples once they halt."""
    carry = initial_carry(model, params, toks.shape[0])
    step_fn = jax.jit(lambda p, t, c: supervision_step(model, p, t, c))
    batch = toks.shape[0]
    preds = np.zeros(toks.shape, np.int32)
    steps = np.zeros(batch, np.int32)
    halted = np.zeros(batch, bool)
    history = []
    for step in range(1, max_depth + 1):
        out = step_fn(params, toks, carry)
        prob = np.asarray(jax.nn.sigmoid(out.halt_logits))
        now = ~halted & ((prob >= threshold) | (step == max_depth))
        preds[now] = np.asarray(out.logits.argmax(-1))[now]
        steps[now] = step
        halted |= now
        history.append(np.asarray(out.logits))
        carry = out.carry
        if halted.all():
            break
    return preds, steps, history


def test_predict_threshold_zero_stops_after_one_step(network):
    model = make_model(small_cfg(network=network), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    pred = predict(model, params, tokens(), halt_threshold=0.0, max_recursion_depth=5)
    np.testing.assert_array_equal(pred.recursion_depth, 1)
    first = supervision_step(model, params, tokens(), initial_carry(model, params, BATCH))
    np.testing.assert_array_equal(pred.tokens, first.logits.argmax(-1))


def test_predict_threshold_above_one_runs_max_depth(network):
    model = make_model(small_cfg(network=network), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    for depth in (1, 3, 5):
        pred = predict(model, params, tokens(), halt_threshold=1.5, max_recursion_depth=depth)
        np.testing.assert_array_equal(pred.recursion_depth, depth)
    preds, steps, _ = reference_predict(model, params, tokens(), 1.5, 5)
    pred = predict(model, params, tokens(), halt_threshold=1.5, max_recursion_depth=5)
    np.testing.assert_array_equal(pred.tokens, preds)


def test_predict_matches_python_loop_with_per_sample_halting(network):
    model = make_model(small_cfg(network=network, num_register_tokens=1), VOCAB, SEQ)
    params = _randomise_halt_head(init_params(model, jax.random.key(0)))
    toks = tokens(batch=8, seed=3)
    # pick the threshold between observed probabilities so samples halt at different steps
    probs = np.asarray(jax.nn.sigmoid(supervision_step(model, params, toks, initial_carry(model, params, 8))
                                      .halt_logits))
    threshold = float(np.median(probs))
    ref_preds, ref_steps, _ = reference_predict(model, params, toks, threshold, 6)
    pred = predict(model, params, toks, halt_threshold=threshold, max_recursion_depth=6)
    np.testing.assert_array_equal(pred.recursion_depth, ref_steps)
    np.testing.assert_array_equal(pred.tokens, ref_preds)
    assert len(set(ref_steps.tolist())) > 1, "test should exercise different halting steps"


def test_predict_knobs_do_not_recompile():
    model = make_model(small_cfg(), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    from trm_jax.models.predict import _predict_jit
    predict(model, params, tokens(), halt_threshold=0.3, max_recursion_depth=2)
    before = _predict_jit._cache_size()
    predict(model, params, tokens(), halt_threshold=0.9, max_recursion_depth=4)
    assert _predict_jit._cache_size() == before


def test_supervision_step_equals_manual_recursion():
    """T cycles of (n latent updates, one answer update) applied by hand in Python."""
    cfg = small_cfg(num_refinement_blocks=3, num_latent_refinements=2)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    toks = tokens()
    # each network use compiled once (op by op, every primitive compiles on its own: slower)
    apply = jax.jit(lambda method, *a: model.apply({"params": params}, *a, method=method), static_argnums=0)
    x = apply(TinyRecursiveModel.embed, toks)
    y, z = initial_carry(model, params, BATCH)
    for _ in range(3):
        for _ in range(2):
            z = apply(TinyRecursiveModel.net, x + y + z)
        y = apply(TinyRecursiveModel.net, y + z)
    logits, halt = apply(TinyRecursiveModel.heads, y)
    out = jax.jit(lambda c: supervision_step(model, params, toks, c))(initial_carry(model, params, BATCH))
    np.testing.assert_allclose(out.logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.carry.z, z, rtol=1e-5, atol=1e-5)


def test_incoming_carry_gets_zero_gradient(network):
    model = make_model(small_cfg(network=network), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    carry = initial_carry(model, params, BATCH)
    carry = carry._replace(y=carry.y + jax.random.normal(jax.random.key(2), carry.y.shape))
    labels = tokens(seed=5)

    def loss_of_carry(c):
        out = supervision_step(model, params, tokens(), c)
        return compute_loss(out.logits, out.halt_logits, labels)[0].sum()

    grads = jax.jit(jax.grad(loss_of_carry))(carry)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))

    def loss_of_params(p):
        out = supervision_step(model, p, tokens(), carry)
        return compute_loss(out.logits, out.halt_logits, labels)[0].sum()

    g = jax.jit(jax.grad(loss_of_params))(params)
    assert float(jnp.abs(g["network"]["final_norm"] if network == "mixer" else
                         g["input_embed"]["embedding"]).max()) > 0


def _grad_temp_bytes(T):
    model = make_model(small_cfg(num_refinement_blocks=T, dim=32), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    carry = initial_carry(model, params, 16)
    toks = tokens(batch=16)

    def loss(p):
        out = supervision_step(model, p, toks, carry)
        return compute_loss(out.logits, out.halt_logits, toks)[0].sum()

    lowered = jax.jit(jax.grad(loss)).lower(params)
    return lowered.compile().memory_analysis().temp_size_in_bytes, str(lowered.as_text()).count("while")


def test_no_grad_cycles_store_no_residuals():
    mem2, _ = _grad_temp_bytes(2)
    mem6, _ = _grad_temp_bytes(6)
    # with residuals stored, T=6 would need ~5x the activations of the gradient cycle
    assert mem6 <= mem2 * 1.1, (mem2, mem6)


def test_gradient_matches_single_cycle_from_advanced_carry():
    """The gradient flows only through the last cycle, run from the carry the frozen cycles reached."""
    cfg = small_cfg(num_refinement_blocks=3)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    toks, labels = tokens(), tokens(seed=9)
    carry0 = initial_carry(model, params, BATCH)

    def full(p):
        out = supervision_step(model, p, toks, carry0)
        return compute_loss(out.logits, out.halt_logits, labels)[0].sum()

    # reference: run the first T-1 cycles with frozen params, then one differentiable cycle
    x_frozen = model.apply({"params": params}, toks, method=TinyRecursiveModel.embed)
    c = carry0
    for cycle in range(2):
        c = latent_recursion(model, params, x_frozen, c)

    def last_cycle(p):
        x = model.apply({"params": p}, toks, method=TinyRecursiveModel.embed)
        y, _ = latent_recursion(model, p, x, c)
        logits, halt = model.apply({"params": p}, y, method=TinyRecursiveModel.heads)
        return compute_loss(logits, halt, labels)[0].sum()

    g_full, g_ref = jax.jit(jax.grad(full))(params), jax.jit(jax.grad(last_cycle))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_full, g_ref)


def test_compute_loss_matches_numpy_reference():
    rng = np.random.RandomState(0)
    logits = rng.randn(4, 5, 7).astype(np.float32)
    labels = rng.randint(0, 7, (4, 5))
    labels[0, 3:] = IGNORE_LABEL
    labels[1] = logits[1].argmax(-1)  # sample 1 fully correct
    halt = rng.randn(4).astype(np.float32)
    total, aux = compute_loss(jnp.asarray(logits), jnp.asarray(halt), jnp.asarray(labels), halt_loss_weight=0.5)

    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for b in range(4):
        m = labels[b] != IGNORE_LABEL
        ce = -np.mean(logp[b][m, labels[b][m]])
        exact = float(np.all(logits[b][m].argmax(-1) == labels[b][m]))
        p = 1 / (1 + np.exp(-halt[b]))
        bce = -(exact * np.log(p) + (1 - exact) * np.log(1 - p))
        np.testing.assert_allclose(aux["ce"][b], ce, rtol=1e-5)
        np.testing.assert_allclose(total[b], ce + 0.5 * bce, rtol=1e-5)
        assert bool(aux["exact"][b]) == bool(exact)
    assert bool(aux["exact"][1]) and int(aux["token_count"][0]) == 3


def test_stablemax_is_a_log_distribution():
    x = jnp.asarray([[-3.0, -0.5, 0.0, 2.0]])
    lp = log_stablemax(x)
    s = np.array([1 / 4, 1 / 1.5, 1.0, 3.0])
    np.testing.assert_allclose(lp[0], np.log(s / s.sum()), rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(lp).sum(), 1.0, rtol=1e-6)
    _, aux = jax.jit(lambda *a: compute_loss(*a, loss_type="stablemax"))(x[None], jnp.zeros(1), jnp.asarray([[3]]))
    np.testing.assert_allclose(aux["ce"][0], -np.log(3.0 / s.sum()), rtol=1e-6)


def test_dropout_uses_rng_and_is_off_without_it():
    model = make_model(small_cfg(dropout=0.5), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    carry = initial_carry(model, params, BATCH)
    a = supervision_step(model, params, tokens(), carry)
    b = supervision_step(model, params, tokens(), carry)
    np.testing.assert_array_equal(a.logits, b.logits)
    c = supervision_step(model, params, tokens(), carry, rng=jax.random.key(1))
    d = supervision_step(model, params, tokens(), carry, rng=jax.random.key(2))
    assert not np.allclose(c.logits, d.logits)


def test_config_is_validated():
    from trm_jax.errors import ConfigError
    with pytest.raises(ConfigError, match="num_refinement_blocks"):
        ModelConfig(num_refinement_blocks=1).validate()
    with pytest.raises(ConfigError, match="num_heads"):
        dataclasses.replace(small_cfg(), network="transformer", num_heads=3).validate()


def test_compacting_predict_equals_single_loop_on_mixed_halting():
    # halting at mixed depths; 40 samples -> buckets 40 -> 32 -> 16 -> 8 as they halt
    model = make_model(small_cfg(max_recursion_depth=8), VOCAB, SEQ)
    params = _randomise_halt_head(init_params(model, jax.random.key(0)))
    toks = tokens(batch=40, seed=3)
    probs = np.asarray(jax.nn.sigmoid(supervision_step(model, params, toks, initial_carry(model, params, 40))
                                      .halt_logits))
    threshold = float(np.quantile(probs, 0.3))
    one = predict(model, params, toks, halt_threshold=threshold, compact=False)
    compact = predict(model, params, toks, halt_threshold=threshold)
    depths = np.asarray(one.recursion_depth)
    assert len(set(depths.tolist())) >= 2 and (depths < 8).sum() > 20  # mixed halting, buckets shrink
    np.testing.assert_array_equal(compact.tokens, one.tokens)
    np.testing.assert_array_equal(compact.recursion_depth, one.recursion_depth)
    np.testing.assert_allclose(compact.halt_prob, one.halt_prob, rtol=1e-5)
    jitted = jax.jit(lambda p, t: predict(model, p, t, halt_threshold=threshold))(params, toks)  # traced: one loop
    np.testing.assert_array_equal(jitted.recursion_depth, one.recursion_depth)


def test_halt_loss_gradient_at_zero_logit_matches_bce_with_logits():
    """A zero-initialised halt head starts every logit at exactly 0: BCE's gradient there is sigmoid(0) - t,
    so wrong answers (t = 0) push it towards "continue" from the first step (F.binary_cross_entropy_with_logits)."""
    from trm_jax.models.losses import sigmoid_bce

    x = jnp.array([0.0, 0.0, 1e-6, -5.0, 3.0, 100.0, -100.0])
    t = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    ref = np.logaddexp(0.0, np.asarray(x, np.float64)) - np.asarray(x * t, np.float64)
    np.testing.assert_allclose(sigmoid_bce(x, t), ref, rtol=1e-6)
    grads = jax.grad(lambda v: sigmoid_bce(v, t).sum())(x)
    np.testing.assert_allclose(grads, 1 / (1 + np.exp(-np.asarray(x, np.float64))) - np.asarray(t), atol=1e-6)

    model = make_model(small_cfg(), VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    assert not np.any(params["to_halt_pred"]["kernel"])  # the PyPI package's zero init
    labels = (tokens() + 1) % VOCAB  # every answer wrong

    def loss(p):
        out = supervision_step(model, p, tokens(), initial_carry(model, p, BATCH))
        return compute_loss(out.logits, out.halt_logits, labels)[0].mean()

    assert np.any(jax.jit(jax.grad(loss))(params)["to_halt_pred"]["kernel"])
