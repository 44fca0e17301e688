"""predict_steps (what trm_jax.trace records): every supervision step's answer and halt probability, the
stop step and reason, and the same answers as predict with the same options."""

import jax
import numpy as np
import pytest
from test_settled_halting import SEQ, inputs, tiny_model

from trm_jax.models import initial_carry, predict, predict_trajectories, supervision_step
from trm_jax.models.trace import predict_steps


def check_against_predict(model, params, toks, ids, **opts):
    record = predict_steps(model, params, toks, puzzle_ids=ids, **opts)
    select = opts.pop("select", "halt")
    every = predict_trajectories(model, params, toks, puzzle_ids=ids, **opts)
    pred = predict(model, params, toks, puzzle_ids=ids, select=select, **opts)
    k = opts.get("trajectories", 1)
    assert record.tokens.shape == (int(np.max(every.recursion_depth)), k, toks.shape[0], SEQ)
    np.testing.assert_array_equal(record.recursion_depth, every.recursion_depth)
    np.testing.assert_array_equal(record.answers(), every.tokens)
    np.testing.assert_array_equal(record.chosen_answers(), pred.tokens)
    np.testing.assert_array_equal(record.stopped_by != "cap", every.settled)
    kk, b = np.indices(record.recursion_depth.shape)
    np.testing.assert_allclose(record.halt_prob[record.recursion_depth - 1, kk, b],
                               jax.nn.sigmoid(every.halt_logit), rtol=1e-5)
    # after a trajectory stopped, its entries repeat its final answer
    for step in range(record.tokens.shape[0]):
        done = record.recursion_depth <= step
        np.testing.assert_array_equal(record.tokens[step][done], record.answers()[done])
    return record


@pytest.mark.parametrize("halting", ["head", "settled"])
def test_one_trajectory_equals_predict(halting):
    model, params = tiny_model()
    toks, _ = inputs(batch=6)
    first = supervision_step(model, params, toks, initial_carry(model, params, 6))
    threshold = float(np.median(np.asarray(jax.nn.sigmoid(first.halt_logits))))
    record = check_against_predict(model, params, toks, None, halting=halting, halt_threshold=threshold,
                                   max_recursion_depth=10)
    np.testing.assert_array_equal(record.tokens[0, 0], np.asarray(first.logits.argmax(-1)))  # step 1's answers
    rule = "halted" if halting == "head" else "settled"
    assert rule in set(record.stopped_by.ravel().tolist()) <= {rule, "cap"}
    if halting == "settled":  # a settled trajectory's last settle_steps + 1 answers are equal
        for b in np.nonzero(record.stopped_by[0] == "settled")[0]:
            d = record.recursion_depth[0, b]
            assert (record.tokens[d - 3:d, 0, b] == record.tokens[d - 1, 0, b]).all()
            assert d == 3 or (record.tokens[d - 4, 0, b] != record.tokens[d - 1, 0, b]).any()


@pytest.mark.parametrize("select", ["halt", "vote", "settled"])
def test_trajectories_equal_predict(select):
    model, params = tiny_model()
    toks, _ = inputs(batch=5)
    record = check_against_predict(model, params, toks, None, trajectories=3, noise_std=0.8, rng=4,
                                   halting="settled", max_recursion_depth=8, select=select)
    assert record.chosen.shape == (5,)


def test_official_variant_with_puzzle_ids_and_a_verifier():
    model, params = tiny_model("official")
    toks, ids = inputs("official", batch=4)
    record = check_against_predict(model, params, toks, ids, trajectories=2, noise_std=0.5, rng=1,
                                   halting="settled", settle_steps=1, max_recursion_depth=6)
    answers = record.answers()
    accept = lambda query, answer: int(answer[0]) == int(answers[1, 0, 0])  # noqa: E731
    verified = predict_steps(model, params, toks, puzzle_ids=ids, trajectories=2, noise_std=0.5, rng=1,
                             halting="settled", settle_steps=1, max_recursion_depth=6, select="verify",
                             verifier=accept)
    np.testing.assert_array_equal(verified.verified, answers[..., 0] == answers[1, 0, 0])
    pred = predict(model, params, toks, puzzle_ids=ids, trajectories=2, noise_std=0.5, rng=1, halting="settled",
                   settle_steps=1, max_recursion_depth=6, select="verify", verifier=accept)
    np.testing.assert_array_equal(verified.chosen_answers(), pred.tokens)
