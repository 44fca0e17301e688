"""Train step vs a hand-written reference; carry refill; halting/exploration; EMA; optimizer; schedule."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig, TrainingConfig
from trm_jax.models import IGNORE_LABEL, Carry, compute_loss, init_params, initial_carry, make_model, supervision_step
from trm_jax.training import distributed as dist
from trm_jax.training.state import (LRSchedule, ema_decay_at, ema_update, make_optimizer, make_train_state,
                                    scale_by_adam_atan2)
from trm_jax.training.step import StepSpec, TrainCarry, empty_train_carry, make_train_step, pmap_train_step

V, L, B = 11, 8, 4


def tiny_model(**kw):
    cfg = ModelConfig(network="mixer", dim=16, depth=1, num_latent_refinements=2, num_refinement_blocks=2,
                      max_recursion_depth=3, **kw)
    return make_model(cfg, V, L)


def tcfg(**kw):
    base = dict(learning_rate=1e-2, warmup_steps=4, weight_decay=0.1, beta1=0.9, beta2=0.95, grad_clip_norm=0.5,
                ema_decay=0.9, ema_warmup=False, halt_exploration_prob=0.0, steps=10, lr_schedule="constant",
                # eps above float32 gradient noise: some biases get ~1e-8 gradients (LayerNorm cancels them)
                adam_eps=1e-4)
    base.update(kw)
    return TrainingConfig(**base)


def make_batch(seed, b=B):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, V, (b, L)).astype(np.int32)
    labels = inputs[:, ::-1].copy()  # reverse: a task with real gradients
    labels[:, -2:] = IGNORE_LABEL
    return dict(inputs=inputs, labels=labels, difficulty=rng.random(b).astype(np.float32))


_compiled = {}


def run_step(model, training, state, carry, batch, key, global_batch=B):
    # one compiled step per (model, training) pair: XLA compiles are the slow part on a small CPU
    ck = (model, training, global_batch)
    if ck not in _compiled:
        spec = StepSpec.create(training, total_steps=training.steps, global_batch=global_batch,
                               peak_lr=training.learning_rate)
        _compiled[ck] = pmap_train_step(make_train_step(model, spec))
    rs, rc, m = _compiled[ck](dist.replicate(state), dist.put_sharded(dist.shard(carry)), dist.shard(batch),
                   np.asarray(jax.random.key_data(key)))
    return dist.unreplicate(rs), TrainCarry(*dist.unshard(tuple(rc))), dist.unreplicate(m)


def reference_adamw(params, grads, mu, nu, count, training, lr):
    """AdamW with global-norm clipping written out by hand (decay on >=2-D arrays only)."""
    leaves = jax.tree.leaves(grads)
    norm = np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in leaves))
    scale = min(1.0, training.grad_clip_norm / norm)
    b1, b2, eps = training.beta1, training.beta2, training.adam_eps
    t = count + 1

    def upd(p, g, m, v):
        g = np.asarray(g, np.float64) * scale
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        if p.ndim >= 2:
            u = u + training.weight_decay * p
        return p - lr * u, m, v

    out = jax.tree.map(upd, params, grads, mu, nu)
    is_t = lambda x: isinstance(x, tuple)
    pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_t)
    return pick(0), pick(1), pick(2)


def test_train_step_matches_hand_written_reference():
    model = tiny_model(halt_threshold=1.0)  # halting only by the step cap: refills are deterministic
    training = tcfg()
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    tx = make_optimizer(training)
    state = jax.device_get(make_train_state(params, tx))

    # a carry mid-flight: slots 0 and 2 halted (refill), slot 1 at the cap - 1 (halts after this step)
    old = make_batch(1)
    rng = np.random.default_rng(3)
    carry = TrainCarry(rng.normal(size=(B, L, 16)).astype(np.float32), rng.normal(size=(B, L, 16)).astype(np.float32),
                       old["inputs"], old["labels"], np.zeros(B, np.int32), old["difficulty"],
                       np.array([3, 2, 1, 1], np.int32),
                       np.array([True, False, True, False]))
    fresh = make_batch(2)
    new_state, new_carry, m = run_step(model, training, state, carry, fresh, jax.random.PRNGKey(9))

    # --- reference, by hand ---
    sel = carry.halted
    inputs = np.where(sel[:, None], fresh["inputs"], old["inputs"])
    labels = np.where(sel[:, None], fresh["labels"], old["labels"])
    init = initial_carry(model, params, B)
    y = np.where(sel[:, None, None], np.asarray(init.y), carry.y)
    z = np.where(sel[:, None, None], np.asarray(init.z), carry.z)

    def loss_fn(p):
        out = supervision_step(model, p, jnp.asarray(inputs), Carry(jnp.asarray(y), jnp.asarray(z)))
        per, aux = compute_loss(out.logits, out.halt_logits, jnp.asarray(labels), halt_loss_weight=1.0)
        return per.mean(), (out, per, aux)

    (loss, (out, per, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    lr = training.learning_rate * 1 / training.warmup_steps  # first warmup step
    zeros = jax.tree.map(np.zeros_like, params)
    ref_params, _, _ = reference_adamw(params, grads, zeros, zeros, 0, training, lr)
    ref_ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, params, ref_params)

    np.testing.assert_allclose(m["loss"] / m["samples"], float(loss), rtol=1e-5)
    np.testing.assert_allclose(m["lr"], lr, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), new_state.params, ref_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), new_state.ema_params, ref_ema)
    assert int(new_state.step) == 1 and int(new_state.nonfinite) == 0

    # carry: refilled rows, kept rows, step counts, cap halting, new recursion state
    np.testing.assert_array_equal(new_carry.inputs, inputs)
    np.testing.assert_array_equal(new_carry.labels, labels)
    np.testing.assert_array_equal(new_carry.recursion_depth, [1, 3, 1, 2])
    np.testing.assert_array_equal(new_carry.halted, [False, True, False, False])
    np.testing.assert_allclose(new_carry.y, np.asarray(out.carry.y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_carry.z, np.asarray(out.carry.z), rtol=1e-5, atol=1e-6)
    # metrics: sums over the slots
    np.testing.assert_allclose(m["ce"], float(aux["ce"].sum()), rtol=1e-5)
    np.testing.assert_allclose(m["exact"], float(aux["exact"].sum()))
    np.testing.assert_allclose(m["token_count"], float(aux["token_count"].sum()))
    assert m["halted"] == 1 and m["recursion_depth"] == 3  # one sample halted, at depth 3


def test_first_step_fills_every_slot_and_slots_persist():
    model = tiny_model(halt_threshold=1.0)
    training = tcfg()
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    batch = make_batch(5)
    state, c, m = run_step(model, training, state, empty_train_carry(B, model), batch, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(c.inputs, batch["inputs"])  # every slot filled from the first batch
    np.testing.assert_array_equal(c.recursion_depth, np.ones(B))
    assert not c.halted.any() and m["halted"] == 0
    for i in range(2):  # no slot halted: fresh batches are ignored until the step cap (3)
        state, c, m = run_step(model, training, state, c, make_batch(10 + i), jax.random.PRNGKey(2))
        np.testing.assert_array_equal(c.inputs, batch["inputs"])
    np.testing.assert_array_equal(c.recursion_depth, np.full(B, 3))
    assert c.halted.all() and m["halted"] == B and m["recursion_depth"] == 3 * B
    _, c, _ = run_step(model, training, state, c, make_batch(20), jax.random.PRNGKey(3))
    np.testing.assert_array_equal(c.inputs, make_batch(20)["inputs"])  # all refilled after the cap
    np.testing.assert_array_equal(c.recursion_depth, np.ones(B))


def test_halt_exploration_forces_minimum_depth():
    model = tiny_model(halt_threshold=0.0)  # the head always says halt: only exploration delays it
    model = model.clone(max_recursion_depth=5)
    training = tcfg(halt_exploration_prob=1.0, learning_rate=1e-6)
    tx = make_optimizer(training)
    fn = pmap_train_step(make_train_step(model, StepSpec.create(training, total_steps=100, global_batch=32,
                                                                peak_lr=1e-6)))
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    state = dist.replicate(jax.device_get(make_train_state(params, tx)))
    carry = dist.put_sharded(dist.shard(empty_train_carry(32, model)))
    depths = []
    for i in range(12):
        state, carry, m = fn(state, carry, dist.shard(make_batch(i, 32)), np.asarray(jax.random.key_data(
            jax.random.PRNGKey(i))))
        c = TrainCarry(*dist.unshard(tuple(carry)))
        depths += list(c.recursion_depth[c.halted])
    assert set(depths) <= {2, 3, 4, 5} and len(set(depths)) >= 3  # min depth drawn from [2, max]


def test_nonfinite_step_is_skipped():
    model = tiny_model(halt_threshold=1.0)
    training = tcfg()
    params = jax.tree.map(np.array, jax.device_get(init_params(model, jax.random.PRNGKey(0))))
    params["to_pred"]["kernel"][0, 0] = np.nan
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    new, c, m = run_step(model, training, state, empty_train_carry(B, model), make_batch(0),
                         jax.random.PRNGKey(0))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), new.params, params)
    assert int(new.nonfinite) == 1 and int(m["nonfinite"]) == 1 and c.halted.all()


def test_ema_update_math():
    ema = {"w": np.array([1.0, 2.0]), "b": np.array(3.0)}
    new = {"w": np.array([3.0, 0.0]), "b": np.array(-1.0)}
    out = ema_update(ema, new, 0.75)
    np.testing.assert_allclose(out["w"], 0.75 * ema["w"] + 0.25 * new["w"])
    np.testing.assert_allclose(out["b"], 0.75 * 3.0 + 0.25 * -1.0)
    same = ema_update(ema, new, 0.0)  # decay 0: the EMA is the params
    np.testing.assert_allclose(same["w"], new["w"])


def test_adam_atan2_update_by_hand():
    tx = scale_by_adam_atan2(0.9, 0.95)
    p = {"w": jnp.array([1.0, -2.0, 0.0])}
    g = {"w": jnp.array([0.5, -0.1, 0.0])}
    s = tx.init(p)
    u1, s = tx.update(g, s)
    # first step: m_hat = g, v_hat = g^2 -> 1.27 * atan2(g, |g|) = +-1.27 * pi/4; 0 for g = 0
    np.testing.assert_allclose(u1["w"], [1.27 * np.pi / 4, -1.27 * np.pi / 4, 0.0], rtol=1e-6)
    g2 = {"w": jnp.array([-0.5, 0.3, 0.0])}
    u2, _ = tx.update(g2, s)
    m = (0.9 * 0.1 * np.array([0.5, -0.1, 0]) + 0.1 * np.array([-0.5, 0.3, 0])) / (1 - 0.81)
    v = (0.95 * 0.05 * np.array([0.25, 0.01, 0]) + 0.05 * np.array([0.25, 0.09, 0])) / (1 - 0.95 ** 2)
    np.testing.assert_allclose(u2["w"], 1.27 * np.arctan2(m, np.sqrt(v)), rtol=1e-5)


def test_lr_schedule_warmup_and_cosine():
    cfg = TrainingConfig(learning_rate=1.0, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    s = LRSchedule(cfg, total_steps=110)
    np.testing.assert_allclose(s(0, 2.0), 0.2, rtol=1e-6)  # (step+1)/warmup * peak (float32)
    np.testing.assert_allclose(s(9, 2.0), 2.0, rtol=1e-6)
    np.testing.assert_allclose(s(4, 1.0), 0.5, rtol=1e-6)
    np.testing.assert_allclose(s(59, 1.0), 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5)), rtol=1e-6)
    np.testing.assert_allclose(s(109, 1.0), 0.1, rtol=1e-6)
    np.testing.assert_allclose(s(500, 1.0), 0.1, rtol=1e-6)
    const = LRSchedule(dataclasses.replace(cfg, lr_schedule="constant"), 110)
    np.testing.assert_allclose(const(50, 3.0), 3.0, rtol=1e-6)
    np.testing.assert_allclose(const(1, 3.0), 0.6, rtol=1e-6)
    no_warmup = LRSchedule(dataclasses.replace(cfg, warmup_steps=0), 100)
    np.testing.assert_allclose(no_warmup(0, 1.0), 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.01)), rtol=1e-6)


def test_batch_not_divisible_by_devices_is_config_error(monkeypatch):
    from trm_jax.errors import ConfigError
    monkeypatch.setattr(jax, "device_count", lambda: 4)
    monkeypatch.setattr(jax, "local_device_count", lambda: 4)
    with pytest.raises(ConfigError, match="training.batch_size.*not divisible by the 4 devices.*8 or 12"):
        dist.check_batch(10, "training.batch_size")
    assert dist.check_batch(12, "training.batch_size") == 3


def test_ema_decay_warmup_values():
    steps = np.array([0, 1, 8, 80, 890, 10 ** 6])
    np.testing.assert_allclose(ema_decay_at(steps, 0.999, True),
                               np.minimum(0.999, (1 + steps) / (10 + steps)), rtol=1e-6)
    np.testing.assert_allclose(ema_decay_at(steps, 0.999, True)[:4], [0.1, 2 / 11, 0.5, 0.9], rtol=1e-6)
    np.testing.assert_allclose(ema_decay_at(5, 0.999, False), 0.999, rtol=1e-7)
    assert float(ema_decay_at(3, 0.0, True)) == 0.0  # decay 0: no EMA, warm-up or not


def test_ema_after_k_steps_follows_the_warmup_formula():
    """k real train steps with the warm-up on: the EMA equals the recurrence ema <- d_t ema + (1 - d_t) p_{t+1},
    d_t = min(decay, (1 + t) / (10 + t)), computed in NumPy (float64) from each step's raw params."""
    model = tiny_model(halt_threshold=1.0)
    training = tcfg(ema_warmup=True, ema_decay=0.95)
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    carry, raw = empty_train_carry(B, model), []
    for t in range(6):
        state, carry, _ = run_step(model, training, state, carry, make_batch(30 + t), jax.random.PRNGKey(t))
        raw.append(jax.tree.map(lambda x: np.asarray(x, np.float64), state.params))
    ema = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    for t, p in enumerate(raw):
        d = min(0.95, (1 + t) / (10 + t))
        ema = jax.tree.map(lambda e, x: d * e + (1 - d) * x, ema, p)
    assert int(state.step) == 6
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), state.ema_params, ema)
    # the constant decay (ema_warmup false) would give another EMA: one still 0.95**6 = 74% initial weights
    const = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    for p in raw:
        const = jax.tree.map(lambda e, x: 0.95 * e + 0.05 * x, const, p)
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(const)))
    assert gap > 1e-3


def test_drop_step_trains_only_the_live_rows_and_refills_only_a_halted_batch():
    """halted_samples=drop: the same update as a step on the live rows alone (hand-written loss), halted
    rows inert, and the batch refilled only once every row halted."""
    model = tiny_model(halt_threshold=1.0)
    training = tcfg(halted_samples="drop")
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    state = jax.device_get(make_train_state(params, make_optimizer(training)))
    old = make_batch(1)
    rng = np.random.default_rng(3)
    carry = TrainCarry(rng.normal(size=(B, L, 16)).astype(np.float32), rng.normal(size=(B, L, 16)).astype(np.float32),
                       old["inputs"], old["labels"], np.zeros(B, np.int32), old["difficulty"],
                       np.array([3, 2, 1, 1], np.int32), np.array([True, False, True, False]))
    new_state, new_carry, m = run_step(model, training, state, carry, make_batch(2), jax.random.PRNGKey(9))

    live = ~carry.halted

    def loss_fn(p):
        out = supervision_step(model, p, jnp.asarray(old["inputs"][live]),
                               Carry(jnp.asarray(carry.y[live]), jnp.asarray(carry.z[live])))
        per, aux = compute_loss(out.logits, out.halt_logits, jnp.asarray(old["labels"][live]), halt_loss_weight=1.0)
        return per.mean(), (out, aux)

    (loss, (out, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    zeros = jax.tree.map(np.zeros_like, params)
    ref_params, _, _ = reference_adamw(params, grads, zeros, zeros, 0, training,
                                       training.learning_rate / training.warmup_steps)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), new_state.params, ref_params)
    assert m["samples"] == 2 and m["halted"] == 1 and m["recursion_depth"] == 3  # row 1 hit the cap
    np.testing.assert_allclose(m["loss"] / m["samples"], float(loss), rtol=1e-5)
    np.testing.assert_allclose(m["ce"], float(aux["ce"].sum()), rtol=1e-5)
    np.testing.assert_array_equal(new_carry.inputs, old["inputs"])  # no refill while a row runs
    np.testing.assert_array_equal(new_carry.recursion_depth, [3, 3, 1, 2])  # halted rows keep theirs
    np.testing.assert_array_equal(new_carry.halted, [True, True, True, False])
    np.testing.assert_allclose(new_carry.y[live], np.asarray(out.carry.y), rtol=1e-5, atol=1e-6)

    _, c, m = run_step(model, training, new_state, new_carry, make_batch(3), jax.random.PRNGKey(1))
    assert m["samples"] == 1 and c.halted.all()  # the last row reaches the cap
    np.testing.assert_array_equal(c.inputs, old["inputs"])
    _, c, m = run_step(model, training, new_state, c, make_batch(4), jax.random.PRNGKey(2))
    np.testing.assert_array_equal(c.inputs, make_batch(4)["inputs"])  # everyone halted: a new batch
    np.testing.assert_array_equal(c.recursion_depth, np.ones(B))
    assert m["samples"] == B
