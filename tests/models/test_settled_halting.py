"""Settled halting in predict: a sample stops when its answer has not changed for settle_steps steps (a
reference loop over supervision_step), the settled flag with either rule, a depth cap in the thousands at
no memory cost, selection among settled or verified trajectories, bad options; the model.halting and
model.settle_steps config keys (round trip, defaults, errors naming the key) reaching the model."""

import dataclasses
import time

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig, TRMConfig, load_config
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models import NO_EARLY_HALT, TinyRecursiveModel, Trajectories, init_params, initial_carry, make_model, \
    model_config, predict, predict_trajectories, supervision_step
from trm_jax.models.predict import DEFAULT_SETTLE_STEPS
from trm_jax.models.trajectories import chosen_index

SEQ, VOCAB, IDS = 8, 7, 5


def tiny_model(variant="pypi", max_recursion_depth=12):
    kw = dict(network="mixer", num_register_tokens=1) if variant == "pypi" else dict(
        network="transformer", variant="official", num_puzzle_identifiers=IDS, puzzle_emb_ndim=16)
    cfg = ModelConfig(dim=16, depth=1, num_heads=2, num_refinement_blocks=2, num_latent_refinements=2,
                      max_recursion_depth=max_recursion_depth, **kw)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    head = "to_halt_pred" if variant == "pypi" else "q_head"  # a random halting head: mixed halting steps
    params[head]["kernel"] = 2.0 * jax.random.normal(jax.random.key(1), params[head]["kernel"].shape)
    if variant == "official":
        params["puzzle_emb"] = jax.random.normal(jax.random.key(2), params["puzzle_emb"].shape)
    return model, params


def inputs(variant="pypi", batch=20, seed=3):
    rs = np.random.RandomState(seed)
    toks = jnp.asarray(rs.randint(0, VOCAB, (batch, SEQ)), jnp.int32)
    ids = jnp.asarray(rs.randint(0, IDS, batch), jnp.int32) if variant == "official" else None
    return toks, ids


def reference_predict(model, params, toks, ids, halting, cap, settle_steps=2, threshold=0.5):
    """One supervision step at a time in Python: (tokens, recursion_depth, halt_prob, settled) per sample."""
    batch = toks.shape[0]
    carry = initial_carry(model, params, batch)
    tokens, depth = np.zeros((batch, SEQ), np.int32), np.zeros(batch, np.int32)
    prob_out, settled = np.zeros(batch, np.float32), np.zeros(batch, bool)
    halted, unchanged, previous = np.zeros(batch, bool), np.zeros(batch, np.int32), None
    for step in range(1, cap + 1):
        out = supervision_step(model, params, toks, carry, puzzle_ids=ids)
        answer, prob = np.asarray(out.logits.argmax(-1)), np.asarray(jax.nn.sigmoid(out.halt_logits))
        if previous is not None:  # after step t: +1 if the answer equals step t-1's, else back to 0
            unchanged = np.where((answer == previous).all(-1), unchanged + 1, 0)
        fires = unchanged >= settle_steps if halting == "settled" else prob >= threshold
        now = ~halted & (fires | (step == cap))
        tokens[now], depth[now], prob_out[now], settled[now] = answer[now], step, prob[now], fires[now]
        halted |= now
        previous, carry = answer, out.carry
        if halted.all():
            break
    return tokens, depth, prob_out, settled


@pytest.mark.parametrize("variant", ["pypi", "official"])
def test_settled_halting_matches_a_reference_loop(variant):
    model, params = tiny_model(variant)
    toks, ids = inputs(variant)
    for settle_steps in (1, 3):
        ref = reference_predict(model, params, toks, ids, "settled", 12, settle_steps)
        assert len(set(ref[1].tolist())) > 2  # samples settle at different steps
        assert ref[1].min() >= settle_steps + 1  # the earliest a sample can settle
        for compact in (True, False):  # 20 rows: the compacting loop shrinks the batch as samples settle
            pred = predict(model, params, toks, puzzle_ids=ids, halting="settled", settle_steps=settle_steps,
                           max_recursion_depth=12, compact=compact)
            np.testing.assert_array_equal(pred.tokens, ref[0])
            np.testing.assert_array_equal(pred.recursion_depth, ref[1])
            np.testing.assert_allclose(pred.halt_prob, ref[2], rtol=1e-5)
            np.testing.assert_array_equal(pred.settled, ref[3])
    # a cap below some samples' settling step: those stop at the cap, not settled
    cap = int(np.median(ref[1]))
    ref = reference_predict(model, params, toks, ids, "settled", cap, 3)
    pred = predict(model, params, toks, puzzle_ids=ids, halting="settled", settle_steps=3, max_recursion_depth=cap)
    assert 0 < ref[3].sum() < len(ref[3])
    np.testing.assert_array_equal(pred.settled, ref[3])
    np.testing.assert_array_equal(pred.recursion_depth, ref[1])
    np.testing.assert_array_equal(pred.tokens, ref[0])


def test_head_halting_reports_settled_when_the_head_stopped_the_sample():
    model, params = tiny_model()
    toks, _ = inputs()
    first = supervision_step(model, params, toks, initial_carry(model, params, toks.shape[0]))
    threshold = float(np.median(np.asarray(jax.nn.sigmoid(first.halt_logits))))  # about half halt at once
    ref = reference_predict(model, params, toks, None, "head", 6, threshold=threshold)
    pred = predict(model, params, toks, halt_threshold=threshold, max_recursion_depth=6)  # "head": the default
    np.testing.assert_array_equal(pred.recursion_depth, ref[1])
    np.testing.assert_array_equal(pred.settled, ref[3])
    assert 0 < ref[3].sum() < len(ref[3])  # some halted by the head, some at the cap
    assert not np.asarray(predict(model, params, toks, halt_threshold=NO_EARLY_HALT).settled).any()
    # the model's own halting / settle_steps are the defaults (set by its config: model.halting, settle_steps)
    configured = make_model(dataclasses.replace(model_config(model), halting="settled", settle_steps=3), VOCAB, SEQ)
    assert (configured.halting, configured.settle_steps) == ("settled", 3)
    default = predict(configured, params, toks, max_recursion_depth=12)
    explicit = predict(model, params, toks, max_recursion_depth=12, halting="settled", settle_steps=3)
    np.testing.assert_array_equal(default.recursion_depth, explicit.recursion_depth)
    np.testing.assert_array_equal(default.settled, explicit.settled)
    np.testing.assert_array_equal(configured.predict(params, toks, max_recursion_depth=12).tokens, explicit.tokens)


def test_a_depth_cap_in_the_thousands_costs_no_memory_and_stops_when_settled():
    from trm_jax.models.predict import _predict_jit

    model, params = tiny_model()
    toks, _ = inputs()
    shallow = predict(model, params, toks, halting="settled", max_recursion_depth=20, compact=False)
    size = _predict_jit._cache_size()
    start = time.perf_counter()
    deep = predict(model, params, toks, halting="settled", max_recursion_depth=2000, compact=False)
    elapsed = time.perf_counter() - start
    assert _predict_jit._cache_size() == size  # the cap and settle_steps are traced: one program for every cap
    assert np.asarray(deep.settled).all() and int(np.max(deep.recursion_depth)) < 20  # every sample settled
    assert elapsed < 30  # 20 rows settle within a few steps; the cap is never reached
    np.testing.assert_array_equal(deep.tokens, shallow.tokens)
    # the loop's state has the same shapes whatever the cap: the latest answer and a counter per row ride in
    # it, no per-step history (one [rows, seq_len] int array beside the carry)
    fn = jax.jit(lambda p, t, cap: predict(model, p, t, halting="settled", max_recursion_depth=cap))
    jaxpr = jax.make_jaxpr(fn)(params, toks, 2000)
    whiles = [e for e in _equations(jaxpr.jaxpr) if e.primitive.name == "while"]
    assert len(whiles) == 1
    state = [v.aval.shape for v in whiles[0].outvars]
    assert (20, SEQ) in state and all(s == () or s[0] == 20 or (len(s) > 1 and s[1] == 20) for s in state)


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _equations(sub)


def test_settled_selection_votes_among_settled_trajectories():
    A, B, C = [1, 1], [2, 2], [3, 3]
    # sample 0: A twice (unsettled), B once settled -> B; sample 1: none settled -> the vote over all (C)
    tokens = jnp.asarray([[A, C], [A, C], [B, A]], jnp.int32)  # [K=3, batch=2, 2]
    settled = jnp.asarray([[False, False], [False, False], [True, False]])
    result = Trajectories(tokens, jnp.ones((3, 2), jnp.int32), jnp.zeros((3, 2)), settled)
    index = np.asarray(chosen_index(result, "settled"))
    assert tokens[index[0], 0].tolist() == B and tokens[index[1], 1].tolist() == C
    # two settled answers: the one more settled trajectories give, then the higher mean halt probability
    tokens = jnp.asarray([[A, A], [B, B], [B, A], [C, C]], jnp.int32)
    settled = jnp.asarray([[True, True], [True, True], [True, False], [False, False]])
    logit = jnp.asarray([[9.0, 0.0], [0.0, 5.0], [0.0, 9.0], [0.0, 0.0]])
    index = np.asarray(chosen_index(Trajectories(tokens, jnp.ones((4, 2), jnp.int32), logit, settled), "settled"))
    assert tokens[index[0], 0].tolist() == B and tokens[index[1], 1].tolist() == B


def test_settled_selection_on_a_model():
    model, params = tiny_model()
    toks, _ = inputs(batch=12)
    opts = dict(trajectories=4, noise_std=0.8, rng=3, halting="settled", settle_steps=2, max_recursion_depth=6)
    every = predict_trajectories(model, params, toks, **opts)
    settled = np.asarray(every.settled)
    assert settled.any() and not settled.all(axis=0).all()  # a mix of settled and capped trajectories
    pred = predict(model, params, toks, select="settled", **opts)
    tokens, prob = np.asarray(every.tokens), np.asarray(jax.nn.sigmoid(every.halt_logit))
    for b in range(12):  # the most frequent settled answer (ties: the higher mean halt probability)
        groups = {}
        for k in (np.nonzero(settled[:, b])[0] if settled[:, b].any() else range(4)):
            groups.setdefault(tokens[k, b].tobytes(), []).append(k)
        best = max(groups.values(), key=lambda ks: (len(ks), np.mean(prob[ks, b])))
        np.testing.assert_array_equal(pred.tokens[b], tokens[best[0], b])
        assert bool(pred.settled[b]) == bool(settled[:, b].any())


def test_verify_selection_picks_an_answer_the_verifier_accepts():
    model, params = tiny_model()
    toks, _ = inputs(batch=12)
    opts = dict(trajectories=4, noise_std=1.0, rng=2, max_recursion_depth=6)
    tokens = np.asarray(predict_trajectories(model, params, toks, **opts).tokens)
    # accept the answers starting with the token trajectory 3 ends on: often not the vote's choice
    target = tokens[3, :, 0]
    calls = []

    def verifier(query, answer):
        calls.append(query)
        return int(answer[0]) == int(target[[np.array_equal(query, t) for t in np.asarray(toks)].index(True)])

    pred = predict(model, params, toks, select="verify", verifier=verifier, **opts)
    assert len(calls) == 4 * 12  # every trajectory of every sample, on the host
    assert np.asarray(pred.verified).all()
    np.testing.assert_array_equal(np.asarray(pred.tokens)[:, 0], target)
    vote = predict(model, params, toks, select="vote", verifier=verifier, **opts)
    assert (np.asarray(vote.tokens) != np.asarray(pred.tokens)).any()
    # with any select, `verified` holds the verifier's verdict on each chosen answer
    np.testing.assert_array_equal(vote.verified, np.asarray(vote.tokens)[:, 0] == target)
    # no trajectory passes: the vote among all
    none = predict(model, params, toks, select="verify", verifier=lambda q, a: False, **opts)
    np.testing.assert_array_equal(none.tokens, predict(model, params, toks, select="vote", **opts).tokens)
    assert not np.asarray(none.verified).any()
    # a verifier runs on the host: under jit it is one clear error
    with pytest.raises(TRMError, match="verifier runs on the host"):
        jax.jit(lambda p, t: predict(model, p, t, select="verify", verifier=verifier, **opts).tokens)(params, toks)


@pytest.mark.parametrize("kwargs, match", [
    (dict(halting="ACT"), r"halting must be one of \('head', 'settled'\)"),
    (dict(halting="settled", settle_steps=0), "settle_steps must be an int >= 1"),
    (dict(halting="settled", settle_steps=True), "settle_steps must be an int >= 1"),
    (dict(settle_steps=-2), "settle_steps must be an int >= 1"),
    (dict(trajectories=2, select="verify"), "select='verify' needs verifier="),
])
def test_bad_options(kwargs, match):
    model, params = tiny_model()
    toks, _ = inputs(batch=4)
    from trm_jax.models.trace import predict_steps

    for fn in (predict, predict_steps):
        with pytest.raises(TRMError, match=match):
            fn(model, params, toks, **kwargs)


def test_halting_config_keys_round_trip_and_reach_the_model(tmp_path):
    cfg = TRMConfig.from_dict(dict(model=dict(halting="settled", settle_steps=4)))
    cfg.save(str(tmp_path / "c.yaml"))
    assert load_config(str(tmp_path / "c.yaml")) == cfg == TRMConfig.from_dict(cfg.to_dict())
    model = make_model(cfg.model, VOCAB, SEQ)
    assert (model.halting, model.settle_steps) == ("settled", 4)
    assert model_config(model).halting == "settled" and model_config(model).settle_steps == 4
    # a config without the keys (a run saved before them) loads with the defaults: the head, and the models
    # layer's settle_steps
    raw = cfg.to_dict()
    del raw["model"]["halting"], raw["model"]["settle_steps"]
    old = TRMConfig.from_dict(raw)
    assert (old.model.halting, old.model.settle_steps) == ("head", DEFAULT_SETTLE_STEPS)
    assert make_model(old.model, VOCAB, SEQ).halting == "head"


@pytest.mark.parametrize("model, match", [
    (dict(halting="ACT"), r"config key 'model.halting': 'ACT' is not one of \['head', 'settled'\]"),
    (dict(settle_steps=0), "config key 'model.settle_steps': must be an int >= 1"),
    (dict(halting="settled", settle_steps=-1), "config key 'model.settle_steps'"),
    (dict(settle_steps=1.5), "config key 'model.settle_steps': expected an integer"),
])
def test_bad_halting_config_names_the_key(model, match):
    with pytest.raises(ConfigError, match=match):
        TRMConfig.from_dict(dict(model=model))


def test_bad_halting_on_the_module_and_a_config_built_by_hand():
    with pytest.raises(ConfigError, match="config key 'model.halting'"):
        TRMConfig(model=ModelConfig(halting="ACT"))
    with pytest.raises(ConfigError, match="halting must be one of"):
        make_model(ModelConfig(halting="ACT"), VOCAB, SEQ)
    with pytest.raises(ConfigError, match="settle_steps must be an int >= 1"):
        TinyRecursiveModel(16, VOCAB, None, seq_len=SEQ, settle_steps=0)


TWO_DEVICES = """
import json, sys
import numpy as np
sys.path[:0] = [{here!r}, {tests!r}]
import jax
from test_settled_halting import tiny_model, inputs
from trm_jax.data.datasets import ArrayDataset
from trm_jax.models import predict
from trm_jax.training.evaluation import evaluate_samples

assert jax.local_device_count() == 2
model, params = tiny_model()
toks, _ = inputs(batch=11)
data = ArrayDataset(np.asarray(toks), np.asarray(toks), np.zeros(11, np.float32))
opts = dict(halting="settled", settle_steps=2, max_recursion_depth=4)  # some settle, some reach the cap
res = evaluate_samples(model, params, data, 4, **opts)  # pmapped over the two devices
one = predict(model, params, toks, **opts)
accept = lambda q, a: int(a[0]) % 2 == 0
chosen = evaluate_samples(model, params, data, 4, trajectories=3, noise_std=1.0, select="verify", verifier=accept,
                          **opts)
print("RESULT" + json.dumps(dict(
    settled=np.asarray(res["settled"]).tolist(), expected=np.asarray(one.settled).tolist(),
    depth=np.asarray(res["recursion_depth"]).tolist(), expected_depth=np.asarray(one.recursion_depth).tolist(),
    verified=np.asarray(chosen["verified"]).tolist(),
    even=(np.asarray(chosen["tokens"])[:, 0] % 2 == 0).tolist())))
"""


def test_held_out_evaluation_on_two_devices_reports_settled_and_verifies_on_the_host():
    """The pmapped eval step reports predict's settled flags; select="verify" (a verifier on the host) runs
    there too, and `verified` is the verifier's verdict on each chosen answer."""
    import json
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    proc = subprocess.run([sys.executable, "-c", TWO_DEVICES.format(here=here, tests=os.path.dirname(here))],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT")[-1])
    assert out["settled"] == out["expected"] and 0 < sum(out["settled"]) < 11
    assert out["depth"] == out["expected_depth"]
    assert out["verified"] == out["even"] and sum(out["verified"]) > 0
