"""Final-step supervision (training.supervision: final): the train step against a hand-written reference,
the official transformer with a puzzle table, and bad options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig, TrainingConfig, TRMConfig
from trm_jax.errors import ConfigError
from trm_jax.models import IGNORE_LABEL, PUZZLE_EMB, init_params, make_model, token_cross_entropy
from trm_jax.training import distributed as dist
from trm_jax.training.state import make_optimizer, make_train_state
from trm_jax.training.step import StepSpec, TrainCarry, empty_train_carry, make_train_step, pmap_train_step

V, L, B, T, N = 11, 8, 4, 3, 2


def tcfg(**kw):
    base = dict(supervision="final", learning_rate=1e-2, warmup_steps=0, weight_decay=0.1, grad_clip_norm=0.5,
                ema_decay=0.9, ema_warmup=False, steps=10, lr_schedule="constant", adam_eps=1e-4,
                halt_exploration_prob=0.5)  # exploration is a deep-supervision setting: ignored here
    base.update(kw)
    return TrainingConfig(**base)


def make_batch(seed, b=B, num_ids=0):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, V, (b, L)).astype(np.int32)
    labels = inputs[:, ::-1].copy()
    labels[:, -2:] = IGNORE_LABEL
    batch = dict(inputs=inputs, labels=labels, difficulty=rng.random(b).astype(np.float32))
    if num_ids:
        batch["puzzle_ids"] = rng.integers(0, num_ids, b).astype(np.int32)
    return batch


def compiled_step(model, training, global_batch=B):
    spec = StepSpec.create(training, total_steps=training.steps, global_batch=global_batch,
                           peak_lr=training.learning_rate)
    return pmap_train_step(make_train_step(model, spec))


def run_step(fn, state, carry, batch, key):
    rs, rc, m = fn(dist.replicate(state), dist.put_sharded(dist.shard(carry)), dist.shard(batch),
                   np.asarray(jax.random.key_data(key)))
    return dist.unreplicate(rs), TrainCarry(*dist.unshard(tuple(rc))), dist.unreplicate(m)


def reference_loss(model, params, inputs, labels, transition, net):
    """Final-step supervision written out: T cycles from the initial carry, each network use by hand;
    stop_gradient on everything before the last cycle, except (with `transition`) the answer update of
    the cycle before it, which sees detached inputs but differentiable weights."""
    apply = lambda p, *a, **k: model.apply({"params": p}, *a, **k)  # noqa: E731
    sg = jax.lax.stop_gradient
    frozen = sg(params)
    x = apply(params, jnp.asarray(inputs), method="embed")
    y, z = apply(params, inputs.shape[0], method="initial_carry")
    y, z = sg(y), sg(z)
    for _ in range(T - 2):  # warm-up cycles
        for _ in range(N):
            z = net(frozen, sg(x) + y + z)
        y = net(frozen, y + z)
    for _ in range(N):  # the transition cycle: latent updates detached
        z = net(frozen, sg(x) + y + z)
    y = net(params if transition else frozen, y + z)
    for _ in range(N):  # the last cycle, differentiated in full
        z = net(params, x + y + z)
    y = net(params, y + z)
    logits, _ = apply(params, y, method="heads")
    labels = jnp.asarray(labels)
    count = (labels != IGNORE_LABEL).sum(-1)
    return (token_cross_entropy(logits, labels).sum(-1) / count).mean()


def reference_update(params, grads, training):
    tx = make_optimizer(training)
    updates, _ = tx.update(grads, tx.init(params), params)
    return jax.tree.map(lambda p, u: p - training.learning_rate * u, params, updates)


def mixer_model():
    model = make_model(ModelConfig(network="mixer", dim=16, depth=1, num_latent_refinements=N,
                                   num_refinement_blocks=T), V, L)
    return model, jax.device_get(init_params(model, jax.random.PRNGKey(0)))


def mid_flight_carry(model, batch):
    """A carry deep supervision would continue (random states, some slots not halted): final-step
    supervision must ignore it and refill every slot."""
    rng = np.random.default_rng(3)
    shape = (B, model.total_len, model.dim)
    return TrainCarry(rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32),
                      batch["inputs"], batch["labels"], np.zeros(B, np.int32), batch["difficulty"],
                      np.array([3, 2, 1, 1], np.int32), np.array([True, False, True, False]))


def transition_drawn(key, p):
    """The step's own draw (train_step: the first of split(key, 3))."""
    return bool(jax.random.uniform(jax.random.split(key, 3)[0]) < p)


def test_final_step_matches_hand_written_reference():
    """One optimizer step: the update of a gradient through the last cycle only (and, when the step's draw
    says so, the previous cycle's answer update), from the initial carry whatever the incoming carry.
    With 0 < transition_grad_prob < 1 the step holds both branches (one program): a step key that draws the
    transition and one that does not check each. (Probability 0, the default, compiles only the first
    branch: the curriculum runs of test_stages.py train with it.)"""
    model, params = mixer_model()
    p = 0.5
    training = tcfg(transition_grad_prob=p)
    fn = compiled_step(model, training)
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    old, fresh = make_batch(1), make_batch(2)
    draws = [transition_drawn(jax.random.PRNGKey(i), p) for i in range(40)]
    cases = [(jax.random.PRNGKey(draws.index(True)), True), (jax.random.PRNGKey(draws.index(False)), False)]

    # the reference compiled whole (eager op-by-op dispatch compiles every primitive and shape: slower)
    net = lambda q, h: model.apply({"params": q}, h, method="net")  # noqa: E731
    ref = {}
    for transition in (False, True):
        ref[transition] = jax.jit(jax.value_and_grad(
            lambda q: reference_loss(model, q, fresh["inputs"], fresh["labels"], transition, net)))(params)
    # the transition path changes the gradient (so this test tells the two apart)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(ref[True][1]), jax.tree.leaves(ref[False][1]))) > 1e-5

    update = jax.jit(lambda q, g: reference_update(q, g, training))
    for key, transition in cases:
        new_state, new_carry, m = run_step(fn, state, mid_flight_carry(model, old), fresh, key)
        loss, grads = ref[transition]
        ref_params = update(params, grads)
        np.testing.assert_allclose(m["loss"] / m["samples"], float(loss), rtol=1e-5)
        np.testing.assert_allclose(m["ce"], m["loss"], rtol=1e-6)
        assert m["halt_loss"] == 0  # no halting loss
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), new_state.params,
                     ref_params)
        ref_ema = jax.tree.map(lambda e, q: 0.9 * np.asarray(e) + 0.1 * np.asarray(q), params, ref_params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), new_state.ema_params,
                     ref_ema)
        # every slot took the fresh sample, ran one step and is done: refilled again next step
        np.testing.assert_array_equal(new_carry.inputs, fresh["inputs"])
        assert new_carry.halted.all() and (new_carry.recursion_depth == 1).all()
        assert m["samples"] == B and m["halted"] == B and m["recursion_depth"] == B  # mean depth 1
        assert 0 <= m["exact"] <= B and m["token_count"] == B * (L - 2)


def test_official_transformer_with_puzzle_table_trains_rows_sparsely():
    """Official variant, transformer network, puzzle embeddings, transition always on: the table rows of the
    batch's identifiers move by sign-SGD, the other rows stay bit for bit; the dense weights train."""
    rows = 6
    model = make_model(ModelConfig(variant="official", network="transformer", dim=16, depth=1, num_heads=2,
                                   num_latent_refinements=1, num_refinement_blocks=2, puzzle_emb_ndim=16,
                                   num_puzzle_identifiers=rows, loss="stablemax"), V, L)
    training = tcfg(transition_grad_prob=1.0, puzzle_emb_lr=1e-2, puzzle_emb_weight_decay=0.0)
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    params = {**params, PUZZLE_EMB: np.random.default_rng(0).normal(size=params[PUZZLE_EMB].shape).astype(np.float32)}
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    fn = compiled_step(model, training)
    batch = make_batch(4, num_ids=3)  # identifiers 0..2 of 6
    new, carry, m = run_step(fn, state, empty_train_carry(B, model), batch, jax.random.PRNGKey(0))
    assert np.isfinite(m["loss"]) and m["halt_loss"] == 0 and carry.halted.all()
    table, old = np.asarray(new.params[PUZZLE_EMB]), params[PUZZLE_EMB]
    used = np.unique(batch["puzzle_ids"])
    untouched = np.setdiff1d(np.arange(rows), used)
    np.testing.assert_array_equal(table[untouched], old[untouched])
    step = np.abs(table[used] - old[used])
    assert np.all((np.isclose(step, 1e-2, rtol=1e-4)) | (step == 0)) and step.max() > 0  # lr * sign
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(new.ema_params),
                                                         jax.tree.leaves({k: v for k, v in params.items()
                                                                          if k != PUZZLE_EMB}))]
    assert max(moved) > 0


def test_bad_supervision_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"training.supervision.*'finale' is not one of.*Did you mean 'final'"):
        TRMConfig.from_dict({"training": {"supervision": "finale"}})
    for p in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"training.transition_grad_prob.*\[0, 1\]"):
            TRMConfig.from_dict({"training": {"supervision": "final", "transition_grad_prob": p}})
    with pytest.raises(ConfigError, match=r"training.transition_grad_prob.*final-step supervision only"):
        TRMConfig.from_dict({"training": {"transition_grad_prob": 0.5}})
    with pytest.raises(ConfigError, match=r"training.halted_samples.*'drop' needs training.supervision: deep"):
        TRMConfig.from_dict({"training": {"supervision": "final", "halted_samples": "drop"}})
    with pytest.raises(ConfigError, match=r"curriculum.stages\[1\].num_refinement_blocks.*>= 2"):
        TRMConfig.from_dict({"curriculum": {"stages": [{"steps": 1}, {"steps": 1, "num_refinement_blocks": 1}]}})
    with pytest.raises(ConfigError, match=r"curriculum.stages\[0\].num_latent_refinements.*> 0"):
        TRMConfig.from_dict({"curriculum": {"stages": [{"steps": 1, "num_latent_refinements": 0}]}})
    ok = TRMConfig.from_dict({"training": {"supervision": "final", "transition_grad_prob": 0.01}})
    assert ok.training.supervision == "final" and TrainingConfig().supervision == "deep"


def test_final_step_run_warns_when_the_untrained_head_would_stop_inference(caplog):
    from trm_jax.training.stages import warn_untrained_halting
    final = {"training": {"supervision": "final"}}
    with caplog.at_level("WARNING", logger="trm_jax.training.stages"):
        warn_untrained_halting(TRMConfig.from_dict(final))
        assert "trains no halting head" in caplog.text and "model.halting: settled" in caplog.text
        caplog.clear()
        for quiet in ({"model": {"halting": "settled"}}, {"model": {"halt_threshold": 2.0}},
                      {"training": {"supervision": "deep"}}):
            warn_untrained_halting(TRMConfig.from_dict({**final, **quiet}))
        assert not caplog.text
