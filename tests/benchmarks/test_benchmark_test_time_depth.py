"""benchmarks.test_time_depth: the stop rules read off one no-early-stop record give what predict gives at
each cap (stop step, answer, stopped-by-rule), and the sweep's accuracies follow from them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.test_time_depth import random_rows, stops_from_record, sweep
from trm_jax.config import ModelConfig
from trm_jax.models import NO_EARLY_HALT, init_params, make_model, predict, predict_steps

SEQ, VOCAB = 8, 5


@pytest.fixture(scope="module")
def recorded():
    cfg = ModelConfig(dim=16, depth=1, num_refinement_blocks=2, num_latent_refinements=1, max_recursion_depth=12,
                      network="mixer", num_register_tokens=1)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    # a random halting head: its probabilities differ by sample and step
    head = params["to_halt_pred"]["kernel"]
    params["to_halt_pred"]["kernel"] = 2.0 * jax.random.normal(jax.random.key(1), head.shape)
    toks = jnp.asarray(np.random.RandomState(3).randint(0, VOCAB, (24, SEQ)), jnp.int32)
    r = predict_steps(model, params, toks, halt_threshold=NO_EARLY_HALT, max_recursion_depth=12)
    return model, params, toks, r.tokens[:, 0], r.halt_prob[:, 0]


# (rule, cap, settle_steps, head threshold); the head's random probabilities lie in 0-0.4
CASES = [("full", 5, 2, 0.5), ("head", 3, 2, 0.1), ("head", 12, 2, 0.1), ("settled", 12, 1, 0.5),
         ("settled", 12, 2, 0.5), ("settled", 4, 2, 0.5)]


@pytest.mark.parametrize("rule,cap,settle_steps,threshold", CASES)
def test_rules_read_off_the_record_are_predicts(recorded, rule, cap, settle_steps, threshold):
    model, params, toks, tokens, halt_prob = recorded
    stop, fired = stops_from_record(tokens, halt_prob, cap, rule, threshold=threshold, settle_steps=settle_steps)
    kw = dict(halting="head", halt_threshold=NO_EARLY_HALT) if rule == "full" else dict(halting=rule)
    out = predict(model, params, toks, max_recursion_depth=cap, settle_steps=settle_steps,
                  **{"halt_threshold": threshold, **kw})
    np.testing.assert_array_equal(stop, np.asarray(out.recursion_depth))
    np.testing.assert_array_equal(tokens[stop - 1, np.arange(len(stop))], np.asarray(out.tokens))
    np.testing.assert_array_equal(fired, np.asarray(out.settled))
    assert fired.any() == (rule != "full")


def test_the_cases_stop_samples_at_many_steps_by_rule_and_by_cap(recorded):
    _, _, _, tokens, halt_prob = recorded
    stops = set()
    for rule, cap, settle_steps, threshold in CASES:
        stop, fired = stops_from_record(tokens, halt_prob, cap, rule, threshold=threshold, settle_steps=settle_steps)
        stops.update(zip(stop.tolist(), fired.tolist()))
    assert {s for s, fired in stops if fired} >= {1, 2, 3, 4} and {s for s, fired in stops if not fired} >= {3, 4, 5}


def test_sweep_scores_each_rule_at_each_cap(recorded):
    _, _, _, tokens, halt_prob = recorded
    labels = tokens[6]  # "right" = the answer after step 7: full depth is right exactly at caps where it equals it
    rows = sweep(tokens, halt_prob, labels, [7, 12], threshold=0.5, settle_steps=2)
    assert rows["full"][7] == dict(exact=1.0, steps=7.0, stopped=0.0)
    expected = np.all(tokens[11] == labels, -1).mean()
    assert rows["full"][12]["exact"] == pytest.approx(expected)
    for cap in (7, 12):  # each cap's row is what the rule read at that cap gives
        stop, fired = stops_from_record(tokens, halt_prob, cap, "settled", settle_steps=2)
        assert rows["settled"][cap]["steps"] == pytest.approx(stop.mean())
        assert rows["settled"][cap]["stopped"] == pytest.approx(fired.mean())
        assert rows["settled"][cap]["exact"] == pytest.approx(np.all(tokens[stop - 1, np.arange(len(stop))] == labels,
                                                                     -1).mean())
    with pytest.raises(ValueError, match="rule must be"):
        stops_from_record(tokens, halt_prob, 4, "vote")


def test_random_rows_are_distinct_in_order_seeded_and_reach_past_the_first():
    rows = random_rows(1000, 50, seed=0)
    assert len(set(rows)) == 50 and list(rows) == sorted(rows) and rows.max() >= 50
    assert (random_rows(1000, 50, seed=0) == rows).all() and not (random_rows(1000, 50, seed=1) == rows).all()
    assert list(random_rows(5, 50, seed=0)) == [0, 1, 2, 3, 4]
