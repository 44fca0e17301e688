"""Test-time trajectories in predict: K=1 is the plain computation, K noisy trajectories match a reference run
one trajectory at a time, the halting head / vote choose, seeds, errors, deeper recursion, devices, infer,
evaluation, the scripts and ARC's augmentation vote."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _scripts import load_script

from trm_jax.config import ModelConfig
from trm_jax.errors import TRMError
from trm_jax.models import (NO_EARLY_HALT, Carry, Trajectories, init_params, initial_carry, make_model, predict,
                            predict_trajectories, supervision_step)
from trm_jax.models.trajectories import chosen_index, indexed_keys

SEQ, VOCAB, IDS = 6, 7, 5
HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_model(variant, max_recursion_depth=6):
    kw = dict(network="mixer", num_register_tokens=1) if variant == "pypi" else dict(
        network="transformer", variant="official", num_puzzle_identifiers=IDS, puzzle_emb_ndim=16)
    cfg = ModelConfig(dim=16, depth=1, num_heads=2, num_refinement_blocks=2, num_latent_refinements=2,
                      max_recursion_depth=max_recursion_depth, **kw)
    model = make_model(cfg, VOCAB, SEQ)
    params = init_params(model, jax.random.key(0))
    # a random halting head and puzzle table, so samples halt at different steps and identifiers matter
    head = "to_halt_pred" if variant == "pypi" else "q_head"
    params[head]["kernel"] = 2.0 * jax.random.normal(jax.random.key(1), params[head]["kernel"].shape)
    if variant == "official":
        params["puzzle_emb"] = jax.random.normal(jax.random.key(2), params["puzzle_emb"].shape)
    return model, params


def inputs(variant, batch=10, seed=3):
    rs = np.random.RandomState(seed)
    toks = jnp.asarray(rs.randint(0, VOCAB, (batch, SEQ)), jnp.int32)
    ids = jnp.asarray(rs.randint(0, IDS, batch), jnp.int32) if variant == "official" else None
    return toks, ids


@pytest.fixture(params=["pypi", "official"])
def variant(request):
    return request.param


def reference_trajectories(model, params, toks, ids, threshold, max_depth, trajectories, noise_std, key,
                           noise_on="y", settle_steps=None):
    """One trajectory at a time, one supervision step at a time, with the documented noise: before step s,
    y of sample b in trajectory k gets noise_std * normal(fold_in(fold_in(fold_in(key, b), k), 2 s + 1)),
    z (when the noise goes there) the draw of 2 s. With `settle_steps`, a trajectory stops when its answer
    has not changed for that many steps (else by the halting head); `settled` says its rule stopped it."""
    batch = toks.shape[0]
    step_fn = jax.jit(lambda p, t, c, i: supervision_step(model, p, t, c, puzzle_ids=i))
    out_tokens = np.zeros((trajectories, batch, SEQ), np.int32)
    depth = np.zeros((trajectories, batch), np.int32)
    logit = np.zeros((trajectories, batch), np.float32)
    settled = np.zeros((trajectories, batch), bool)
    for k in range(trajectories):
        carry = initial_carry(model, params, batch)
        halted = np.zeros(batch, bool)
        unchanged, previous = np.zeros(batch, np.int32), None
        for step in range(max_depth):
            if noise_std is not None:
                def draw(i):
                    keys = [jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, b), k), i)
                            for b in range(batch)]
                    return np.float32(noise_std) * jnp.stack([jax.random.normal(r, carry.z.shape[1:]) for r in keys])

                y = carry.y + draw(2 * step + 1) if noise_on in ("y", "both") else carry.y
                z = carry.z + draw(2 * step) if noise_on in ("z", "both") else carry.z
                carry = Carry(y, z)
            out = step_fn(params, toks, carry, ids)
            answer = np.asarray(out.logits.argmax(-1))
            if previous is not None:
                unchanged = np.where((answer == previous).all(-1), unchanged + 1, 0)
            if settle_steps is None:
                fires = np.asarray(jax.nn.sigmoid(out.halt_logits)) >= threshold
            else:
                fires = unchanged >= settle_steps
            now = ~halted & (fires | (step + 1 == max_depth))
            out_tokens[k, now] = answer[now]
            depth[k, now] = step + 1
            logit[k, now] = np.asarray(out.halt_logits)[now]
            settled[k, now] = fires[now]
            halted |= now
            carry, previous = out.carry, answer
    if settle_steps is not None:
        return out_tokens, depth, logit, settled
    return out_tokens, depth, logit


def test_one_trajectory_is_the_plain_computation(variant):
    model, params = tiny_model(variant)
    toks, ids = inputs(variant, batch=20)
    ref_tokens, ref_depth, ref_logit = reference_trajectories(model, params, toks, ids, 0.5, 6, 1, None, None)
    plain = predict(model, params, toks, puzzle_ids=ids)
    assert len(set(np.asarray(plain.recursion_depth).tolist())) > 1  # mixed halting
    np.testing.assert_array_equal(plain.tokens, ref_tokens[0])
    np.testing.assert_array_equal(plain.recursion_depth, ref_depth[0])
    np.testing.assert_allclose(plain.halt_prob, jax.nn.sigmoid(ref_logit[0]), rtol=1e-5)
    # the noise path with zero noise changes nothing, eager (compacting: 20 rows) and under jit
    zero = predict(model, params, toks, puzzle_ids=ids, trajectories=1, noise_std=0.0)
    jitted = jax.jit(lambda p, t, i: predict(model, p, t, puzzle_ids=i, noise_std=0.0))(params, toks, ids)
    for other in (zero, jitted):
        np.testing.assert_array_equal(other.tokens, plain.tokens)
        np.testing.assert_array_equal(other.recursion_depth, plain.recursion_depth)
        np.testing.assert_allclose(other.halt_prob, plain.halt_prob, rtol=1e-6)
    # and without noise_std no key, no random number is ever made: trajectories=1 costs nothing extra
    jaxpr = str(jax.make_jaxpr(lambda p, t, i: predict(model, p, t, puzzle_ids=i, compact=False))(params, toks, ids))
    assert "random" not in jaxpr and "threefry" not in jaxpr


def test_zero_noise_gives_identical_trajectories_and_the_plain_answer(variant):
    model, params = tiny_model(variant)
    toks, ids = inputs(variant)
    plain = predict(model, params, toks, puzzle_ids=ids)
    every = predict_trajectories(model, params, toks, puzzle_ids=ids, trajectories=4, noise_std=0.0)
    assert every.tokens.shape == (4, 10, SEQ) and every.recursion_depth.shape == (4, 10)
    for a in every:
        np.testing.assert_array_equal(a, jnp.broadcast_to(a[:1], a.shape))
    np.testing.assert_array_equal(every.tokens[0], plain.tokens)
    for select in ("halt", "vote"):
        pred = predict(model, params, toks, puzzle_ids=ids, trajectories=4, noise_std=0.0, select=select)
        np.testing.assert_array_equal(pred.tokens, plain.tokens)
        np.testing.assert_array_equal(pred.recursion_depth, plain.recursion_depth)


def test_trajectories_match_a_reference_run_one_at_a_time(variant):
    model, params = tiny_model(variant)
    toks, ids = inputs(variant)
    key = jax.random.key(5)
    ref_tokens, ref_depth, ref_logit = reference_trajectories(model, params, toks, ids, 0.5, 6, 3, 0.8, key)
    assert (ref_tokens != ref_tokens[:1]).any() and (ref_depth != ref_depth[:1]).any()  # the noise matters
    for compact in (True, False):  # 30 rows: the compacting loop shrinks the batch as trajectories halt
        every = predict_trajectories(model, params, toks, puzzle_ids=ids, trajectories=3, noise_std=0.8, rng=key,
                                     compact=compact)
        np.testing.assert_array_equal(every.tokens, ref_tokens)
        np.testing.assert_array_equal(every.recursion_depth, ref_depth)
        np.testing.assert_allclose(every.halt_logit, ref_logit, rtol=1e-4, atol=1e-5)
    # select="halt": per sample the trajectory with the highest final halt logit
    best = ref_logit.argmax(0)
    pred = predict(model, params, toks, puzzle_ids=ids, trajectories=3, noise_std=0.8, rng=key)
    np.testing.assert_array_equal(pred.tokens, ref_tokens[best, np.arange(10)])
    np.testing.assert_array_equal(pred.recursion_depth, ref_depth[best, np.arange(10)])
    np.testing.assert_allclose(pred.halt_prob, jax.nn.sigmoid(ref_logit.max(0)), rtol=1e-4)
    assert (best != 0).any()  # not simply the first trajectory


def test_settled_halting_trajectories_match_a_reference_run_one_at_a_time():
    model, params = tiny_model("pypi", max_recursion_depth=8)
    toks, _ = inputs("pypi")
    key = jax.random.key(5)
    ref_tokens, ref_depth, _, ref_settled = reference_trajectories(model, params, toks, None, None, 8, 3, 0.3, key,
                                                                   settle_steps=2)
    assert ref_settled.any() and not ref_settled.all() and len(set(ref_depth.ravel().tolist())) > 2
    for compact in (True, False):  # 30 rows: compaction carries each row's latest answer and counter along
        every = predict_trajectories(model, params, toks, trajectories=3, noise_std=0.3, rng=key, compact=compact,
                                     halting="settled", settle_steps=2)
        np.testing.assert_array_equal(every.tokens, ref_tokens)
        np.testing.assert_array_equal(every.recursion_depth, ref_depth)
        np.testing.assert_array_equal(every.settled, ref_settled)


@pytest.mark.parametrize("noise_on", ["z", "both"])
def test_noise_on_the_latent_matches_the_reference(noise_on):
    model, params = tiny_model("pypi")
    toks, _ = inputs("pypi", batch=4)
    key = jax.random.key(1)
    ref_tokens, ref_depth, ref_logit = reference_trajectories(model, params, toks, None, 0.5, 6, 2, 0.8, key, noise_on)
    every = predict_trajectories(model, params, toks, trajectories=2, noise_std=0.8, rng=key, noise_on=noise_on)
    np.testing.assert_array_equal(every.tokens, ref_tokens)
    np.testing.assert_array_equal(every.recursion_depth, ref_depth)
    np.testing.assert_allclose(every.halt_logit, ref_logit, rtol=1e-4, atol=1e-5)
    with pytest.raises(TRMError, match="noise_on must be one of"):
        predict_trajectories(model, params, toks, trajectories=2, noise_std=0.8, noise_on="x")


def vote_reference(tokens, halt_prob):
    """Per sample: the answer given by the most trajectories, ties by the higher mean halt probability."""
    out = []
    for b in range(tokens.shape[1]):
        groups = {}
        for k in range(tokens.shape[0]):
            groups.setdefault(tokens[k, b].tobytes(), []).append(k)
        best = max(groups.values(), key=lambda ks: (len(ks), np.mean(halt_prob[ks, b])))
        out.append(tokens[best[0], b])
    return np.stack(out)


def test_vote_picks_the_most_frequent_answer_then_the_surest():
    # sample 0: answer A three times; sample 1: A and B twice each, B with the higher mean halt probability
    A, B, C = [1, 1], [2, 2], [3, 3]
    tokens = jnp.asarray([[A, A], [B, B], [A, A], [C, B], [A, C]], jnp.int32)  # [K=5, batch=2, 2]
    logit = jnp.asarray([[0.0, 0.0], [3.0, 2.0], [0.0, 0.0], [9.0, 2.0], [0.0, 9.0]])
    result = Trajectories(tokens, jnp.ones((5, 2), jnp.int32), logit)
    index = np.asarray(chosen_index(result, "vote"))
    assert tokens[index[0], 0].tolist() == A and tokens[index[1], 1].tolist() == B
    assert np.asarray(chosen_index(result, "halt")).tolist() == [3, 4]


def test_vote_on_a_model_equals_the_reference_mode(variant):
    model, params = tiny_model(variant)
    toks, ids = inputs(variant, batch=12)
    every = predict_trajectories(model, params, toks, puzzle_ids=ids, trajectories=6, noise_std=1.0, rng=2)
    tokens, prob = np.asarray(every.tokens), np.asarray(jax.nn.sigmoid(every.halt_logit))
    pred = predict(model, params, toks, puzzle_ids=ids, trajectories=6, noise_std=1.0, rng=2, select="vote")
    np.testing.assert_array_equal(pred.tokens, vote_reference(tokens, prob))
    halt = predict(model, params, toks, puzzle_ids=ids, trajectories=6, noise_std=1.0, rng=2)
    assert (np.asarray(pred.tokens) != np.asarray(halt.tokens)).any()  # the two rules differ here


def test_seeds_keys_and_batch_position():
    model, params = tiny_model("pypi")
    toks, _ = inputs("pypi", batch=16)

    def run(rng):
        return predict_trajectories(model, params, toks, trajectories=4, noise_std=0.5, rng=rng)

    a, b, c = run(7), run(7), run(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.halt_logit, c.halt_logit)
    np.testing.assert_array_equal(run(jax.random.key(7)).tokens, a.tokens)  # an int seed is key(seed)
    np.testing.assert_array_equal(run(None).tokens, run(0).tokens)  # the default key is seed 0
    # per-sample keys: samples 4..9 alone get the trajectories they got in the full batch
    keys = indexed_keys(7, np.arange(16))
    np.testing.assert_array_equal(run(keys).tokens, a.tokens)
    part = predict_trajectories(model, params, toks[4:10], trajectories=4, noise_std=0.5, rng=keys[4:10])
    np.testing.assert_array_equal(part.tokens, a.tokens[:, 4:10])
    np.testing.assert_array_equal(part.recursion_depth, a.recursion_depth[:, 4:10])


@pytest.mark.parametrize("kwargs, match", [
    (dict(trajectories=0), "trajectories must be an int >= 1"),
    (dict(trajectories=2.5), "trajectories must be an int >= 1"),
    (dict(trajectories=4, noise_std=-0.1), "noise_std must be a finite number >= 0"),
    (dict(trajectories=4, noise_std=float("nan")), "noise_std must be a finite number >= 0"),
    (dict(trajectories=4, noise_std="big"), "noise_std must be a number"),
    (dict(trajectories=4, select="max"), r"select must be one of \('halt', 'vote', 'settled', 'verify'\)"),
    (dict(trajectories=4, select="verify"), r"select='verify' needs verifier=fn"),
    (dict(trajectories=4, select="verify", verifier="sudoku"), "verifier must be a function"),
    (dict(halting="never"), r"halting must be one of \('head', 'settled'\)"),
    (dict(halting="settled", settle_steps=0), "settle_steps must be an int >= 1"),
    (dict(halting="settled", settle_steps=1.5), "settle_steps must be an int >= 1"),
    (dict(max_recursion_depth=0), "max_recursion_depth must be >= 1"),
    (dict(trajectories=4, rng="seed"), "rng must be an int seed or a JAX PRNG key"),
    (dict(trajectories=4, rng=jnp.zeros(3)), "rng must be an int seed, a PRNG key or one key per sample"),
    (dict(trajectories=4, rng=jax.random.split(jax.random.key(0), 3)), r"one per sample \(10,\)"),
])
def test_bad_options_raise_one_clear_error(kwargs, match):
    model, params = tiny_model("pypi")
    toks, _ = inputs("pypi")
    with pytest.raises(TRMError, match=match):
        predict(model, params, toks, **kwargs)


def test_jit_traced_noise_and_key_without_recompilation():
    from trm_jax.models.predict import _predict_jit

    model, params = tiny_model("pypi")
    toks, _ = inputs("pypi", batch=4)
    fn = jax.jit(lambda p, t, s, key: predict(model, p, t, trajectories=4, noise_std=s, rng=key))
    eager = predict(model, params, toks, trajectories=4, noise_std=0.7, rng=jax.random.key(3))
    jitted = fn(params, toks, 0.7, jax.random.key(3))
    np.testing.assert_array_equal(jitted.tokens, eager.tokens)
    np.testing.assert_array_equal(jitted.recursion_depth, eager.recursion_depth)
    before = _predict_jit._cache_size()
    for s, seed in ((0.1, 1), (0.4, 2), (0.0, 3)):
        predict(model, params, toks, trajectories=4, noise_std=s, rng=seed, halt_threshold=0.3 + s)
    assert _predict_jit._cache_size() == before  # noise scale, key and knobs are traced values
    assert fn._cache_size() == 1


def test_deeper_recursion_than_trained(variant):
    from trm_jax.models.predict import _predict_jit

    model, params = tiny_model(variant, max_recursion_depth=4)  # "trained" with at most 4 steps
    toks, ids = inputs(variant, batch=4)
    deep = predict(model, params, toks, puzzle_ids=ids, halt_threshold=NO_EARLY_HALT, max_recursion_depth=12)
    np.testing.assert_array_equal(deep.recursion_depth, 12)
    ref_tokens, _, _ = reference_trajectories(model, params, toks, ids, NO_EARLY_HALT, 12, 1, None, None)
    np.testing.assert_array_equal(deep.tokens, ref_tokens[0])
    size = _predict_jit._cache_size()
    noisy = predict(model, params, toks, puzzle_ids=ids, halt_threshold=NO_EARLY_HALT, max_recursion_depth=32,
                    trajectories=2, noise_std=0.1)
    np.testing.assert_array_equal(noisy.recursion_depth, 32)
    predict(model, params, toks, puzzle_ids=ids, halt_threshold=NO_EARLY_HALT, max_recursion_depth=8)
    assert _predict_jit._cache_size() == size + 1  # the 2-trajectory program; depth 8, 12, 32 share theirs


TWO_DEVICES = r"""
import json, sys
import jax, numpy as np
sys.path[:0] = [{here!r}, {tests!r}]
from test_trajectories import tiny_model, inputs
from trm_jax.data.datasets import ArrayDataset
from trm_jax.models import predict
from trm_jax.models.trajectories import indexed_keys
from trm_jax.training.evaluation import evaluate_samples

assert jax.local_device_count() == 2
model, params = tiny_model("official")
toks, ids = inputs("official", batch=11)
labels = np.asarray(toks)[:, ::-1].copy()
data = ArrayDataset(np.asarray(toks), labels, np.zeros(11, np.float32), puzzle_ids=np.asarray(ids))
out = {{}}
for select in ("halt", "vote"):
    res = evaluate_samples(model, params, data, 4, trajectories=3, noise_std=0.8, select=select, seed=9)
    one = predict(model, params, toks, puzzle_ids=ids, trajectories=3, noise_std=0.8, select=select,
                  rng=indexed_keys(9, np.arange(11)))
    out[select] = dict(pmap_tokens=np.asarray(res["tokens"]).tolist(), tokens=np.asarray(one.tokens).tolist(),
                       pmap_depth=np.asarray(res["recursion_depth"]).tolist(),
                       depth=np.asarray(one.recursion_depth).tolist())
print("RESULT" + json.dumps(out))
"""


def test_evaluation_on_two_devices_matches_one_device_predict():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    proc = subprocess.run([sys.executable, "-c", TWO_DEVICES.format(here=HERE, tests=os.path.dirname(HERE))], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT")[-1])
    for select, r in out.items():
        assert r["pmap_tokens"] == r["tokens"], select
        assert r["pmap_depth"] == r["depth"], select


def test_infer_and_evaluate_take_the_options(tiny_run):
    import trm_jax
    from trm_jax.evaluation import evaluate

    p = trm_jax.load(tiny_run[0])
    queries = [f"what is f({i})?" for i in range(5)]
    plain = trm_jax.infer(p, queries)
    assert trm_jax.infer(p, queries, trajectories=1) == plain
    a = trm_jax.infer(p, queries, trajectories=4, noise_std=0.5, seed=3, return_details=True)
    assert trm_jax.infer(p, queries, trajectories=4, noise_std=0.5, seed=3, return_details=True) == a
    # query i's noise is keyed by its index: answering it alone or in the list gives the same answer
    assert trm_jax.infer(p, queries[:2], trajectories=4, noise_std=0.5, seed=3, return_details=True) == a[:2]
    zero = trm_jax.infer(p, queries, trajectories=4, noise_std=0.0, select="vote")
    assert zero == plain
    with pytest.raises(TRMError, match="select must be one of"):
        trm_jax.infer(p, queries, trajectories=4, select="best")
    base = evaluate(p, batch_size=16)
    np.testing.assert_equal(evaluate(p, batch_size=16, trajectories=1), base)  # NaN where nothing settled
    noisy = evaluate(p, batch_size=16, trajectories=3, noise_std=0.5, seed=1)
    np.testing.assert_equal(evaluate(p, batch_size=8, trajectories=3, noise_std=0.5, seed=1), noisy)  # batch size does not matter
    assert noisy["num_samples"] == base["num_samples"]


def test_sudoku_infer_with_trajectories_without_training():
    """The Sudoku task's encode -> predict -> decode path with trajectories (random weights)."""
    import trm_jax
    from trm_jax.config import TRMConfig

    cfg = TRMConfig.from_dict(dict(model=dict(dim=16, depth=1, num_latent_refinements=1, num_refinement_blocks=2,
                                              max_recursion_depth=2),
                                   data=dict(task="sudoku", tokenizer="grid", seq_len=81)))
    p = trm_jax.models.make_model(cfg.model, 11, 81)
    params = init_params(p, jax.random.key(0))
    puzzle = "." * 40 + "123456789" + "." * 32
    queries = [puzzle, puzzle.replace(".", "0")]  # '.' or '0' for blanks
    out = trm_jax.infer(params, queries, config=cfg, trajectories=3, seed=1)
    assert len(out) == 2 and all(isinstance(a, str) and len(a) <= 81 for a in out)  # random weights: any tokens
    assert trm_jax.infer(params, queries, config=cfg, trajectories=3, seed=1) == out
    assert trm_jax.infer(params, queries, config=cfg, trajectories=3, noise_std=0.0) == trm_jax.infer(
        params, queries, config=cfg)


_script = load_script


def test_scripts_take_the_flags(tiny_run, tmp_path, capsys):
    infer_script, evaluate_script = _script("infer"), _script("evaluate")
    run_dir = tiny_run[0]
    infer_script.main(["--run", run_dir, "--text", "what is f(1)?", "--text", "what is f(2)?", "--trajectories", "3",
                       "--noise-std", "0.4", "--select", "vote", "--seed", "2", "--details"])
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["text"] for x in lines] == ["what is f(1)?", "what is f(2)?"] and all("answer" in x for x in lines)
    out = tmp_path / "results.json"
    evaluate_script.main(["--run", run_dir, "--trajectories", "2", "--noise-std", "0.3", "--select", "halt",
                          "--max-recursion-depth", "5", "--out", str(out)])
    results = json.load(open(out))
    assert 0.0 <= results["exact_accuracy"] <= 1.0 and results["recursion_depth"] <= 5
    with pytest.raises(SystemExit, match="trajectories must be an int >= 1"):
        evaluate_script.main(["--run", run_dir, "--trajectories", "0", "--out", str(out)])


def test_arc_vote_counts_every_trajectory_or_the_chosen_one(tmp_path):
    from trm_jax.tasks.arc.build import build_arc
    from trm_jax.tasks.arc.evaluation import evaluate_arc, evaluate_arc_build, model_predict_fn

    # evaluate_arc takes K candidates per row: each is a vote
    grid = [[1, 2], [3, 4]]
    x = np.zeros((1, 900), np.int32)
    from trm_jax.tasks.arc.augment import Augmentation, puzzle_identifier_name
    from trm_jax.tasks.arc.build import encode_grids
    x[0] = encode_grids(np.asarray(grid, np.uint8)[None])[0]
    ids = ["<blank>", puzzle_identifier_name("t", Augmentation(0, tuple(range(10))))]
    task = {"t": {"train": [], "test": [{"input": grid, "output": grid}]}}
    three = lambda i, p: (np.stack([i, i, i]), np.full((3, len(i)), 0.5))  # noqa: E731
    r = evaluate_arc(three, x, np.array([1], np.int32), ids, task, pass_ks=(1,), batch_size=2)
    assert r.ranked["t"][0][0][1] == 3 and r.metrics["pass@1"] == 1.0

    folder = tmp_path / "arc"
    for split, name in (("training", "t"), ("evaluation", "e")):
        (folder / split).mkdir(parents=True)
        (folder / split / f"{name}.json").write_text(json.dumps({"train": [{"input": grid, "output": grid}],
                                                                 "test": [{"input": grid, "output": grid}]}))
    b = build_arc(str(folder), num_aug=2, cache_dir=str(tmp_path / "c"), progress=False)
    cfg = ModelConfig(variant="official", network="transformer", dim=16, depth=1, num_heads=2, num_tokens=12,
                      puzzle_emb_ndim=16, num_puzzle_identifiers=b.num_puzzle_identifiers,
                      num_refinement_blocks=2, num_latent_refinements=1, max_recursion_depth=2)
    model = make_model(cfg, seq_len=900)
    params = init_params(model, jax.random.key(0))
    votes = {}
    for select in ("halt", "vote"):
        fn = model_predict_fn(model, params, trajectories=4, noise_std=0.5, select=select, seed=1)
        r = evaluate_arc_build(fn, b, pass_ks=(1,), batch_size=4)
        votes[select] = sum(c for _, c, _ in r.ranked["e"][0])
    assert votes == {"halt": 3, "vote": 12}  # 3 rows (the original and 2 augmentations), x4 when all vote
