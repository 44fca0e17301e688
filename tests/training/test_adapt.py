"""Test-time adaptation (trm_jax.adapt_puzzle_embeddings) on a family whose rule only the demonstrations tell
(tests/_adapt_family.py): new identifiers answered far better after adapting than with the blank identifier,
the rest of the model untouched, one compiled step, same rng same result, clear errors."""

import _adapt_family as fam
import jax
import numpy as np
import pytest

import trm_jax
from trm_jax import TRMError
from trm_jax.models import PUZZLE_EMB, predict, token_matches
from _paths import TESTS

TRAINED = range(1, 25)  # identifiers the run trains on (0 is the blank identifier)
NEW = range(25, 37)  # identifiers it never saw: beyond its table's 25 rows
# train="all" for REPLAY_STEPS steps: without replay the trained identifiers fall to 0.43 exact (measured), with
# half of the slots replaying the run's samples they stay at 1.0
REPLAY_STEPS = 50
FORGOTTEN = 0.8


def training_data():
    return fam.samples(fam.permutations(TRAINED, seed=0), 32, seed=1)


TRAINING = dict(batch_size=64, learning_rate=3e-3, warmup_steps=20, ema_decay=0.0, progress_bar=False)


def _train() -> dict:
    from trm_jax.training import Trainer

    result = Trainer(fam.model(len(TRAINED) + 1), training_data(), steps=400, **TRAINING)()
    leaves = jax.tree.leaves(result.params)
    return dict(leaves=[np.asarray(a).tolist() for a in leaves], dtypes=[str(a.dtype) for a in leaves])


@pytest.fixture(scope="module")
def run(once):
    """(model, params) of a small official-variant model trained 400 steps on the TRAINED identifiers; trained
    once in the session (under xdist the module's tests land on both workers), params as arrays again."""
    out = once("adapt_trained", _train)
    model = fam.model(len(TRAINED) + 1)
    treedef = jax.tree.structure(jax.eval_shape(model.init_params, jax.random.key(0)))
    leaves = [jax.numpy.asarray(np.asarray(a, d)) for a, d in zip(out["leaves"], out["dtypes"])]
    return model, jax.tree.unflatten(treedef, leaves)


@pytest.fixture(scope="module")
def trained(run):
    """(model, params, a Trainer of the same training set): the Trainer trained 2 steps, for its training set."""
    from trm_jax.training import Trainer

    trainer = Trainer(fam.model(len(TRAINED) + 1), training_data(), steps=2, **dict(TRAINING, warmup_steps=1))
    trainer()
    return (*run, trainer)


def accuracy(model, params, data):
    """(token accuracy, exact accuracy, predicted tokens)."""
    tokens = np.asarray(predict(model, params, data["inputs"], puzzle_ids=data["puzzle_ids"]).tokens)
    correct, count, exact = token_matches(tokens, data["labels"])
    return float(np.sum(correct) / np.sum(count)), float(np.mean(exact)), tokens


def as_tuple(data):
    return data["inputs"], data["labels"], data["puzzle_ids"]


def test_adapted_identifiers_are_answered_far_better_than_the_blank_one(run):
    model, params = run
    maps = fam.permutations(NEW, seed=0)
    demos, held_out = fam.samples(maps, 8, seed=3), fam.samples(maps, 16, seed=4)
    trained = fam.samples(fam.permutations(TRAINED, seed=0), 8, seed=5)
    token_trained, exact_trained, before = accuracy(model, params, trained)
    assert exact_trained > 0.95  # the run learned its identifiers

    blank = dict(held_out, puzzle_ids=np.zeros_like(held_out["puzzle_ids"]))  # identifier 0: never trained
    blank_token, blank_exact, _ = accuracy(model, params, blank)
    adapted_model, adapted = trm_jax.adapt_puzzle_embeddings(model, params, as_tuple(demos), steps=300, rng=0,
                                                             progress=False)
    token, exact, _ = accuracy(adapted_model, adapted, held_out)  # pairs the adaptation never saw
    assert blank_exact < 0.1 and blank_token < 0.6
    assert exact > 0.75 and token > 0.9, (exact, token)  # blank: < 0.1

    # the table grew to the new identifiers; nothing else of the model changed
    assert adapted_model.num_puzzle_identifiers == max(NEW) + 1 == adapted[PUZZLE_EMB].shape[0]
    assert adapted_model.clone(num_puzzle_identifiers=model.num_puzzle_identifiers) == model
    assert all(adapted[k] is params[k] for k in params if k != PUZZLE_EMB)  # dense weights: the same arrays
    np.testing.assert_array_equal(np.asarray(adapted[PUZZLE_EMB])[:len(TRAINED) + 1], np.asarray(params[PUZZLE_EMB]))
    # identifiers it trained on keep their answers, token for token
    np.testing.assert_array_equal(accuracy(adapted_model, adapted, trained)[2], before)


def test_new_rows_start_as_the_mean_of_the_trained_rows(run):
    model, params = run
    demos = fam.samples(fam.permutations([30], seed=0), 4, seed=3)
    _, adapted = trm_jax.adapt_puzzle_embeddings(model, params, as_tuple(demos), steps=1, learning_rate=1e-9,
                                                 progress=False)
    table = np.asarray(params[PUZZLE_EMB])
    trained_rows = table[np.any(table != 0, axis=1)]
    assert len(trained_rows) == len(TRAINED)  # the blank row 0 was never trained: it is not averaged
    grown = np.asarray(adapted[PUZZLE_EMB])
    np.testing.assert_allclose(grown[30], trained_rows.mean(axis=0), atol=1e-6)
    assert not grown[25:30].any()  # rows the data does not use stay at their (zero) initialisation
    # params as Flax's model.init returns them ({"params": ...}) come back the same way
    _, wrapped = trm_jax.adapt_puzzle_embeddings(model, {"params": params}, as_tuple(demos), steps=1,
                                                 learning_rate=1e-9, progress=False)
    np.testing.assert_array_equal(np.asarray(wrapped["params"][PUZZLE_EMB]), grown)


def test_same_rng_same_result_and_one_compilation_per_adaptation(run, monkeypatch):
    from trm_jax.training import adapt as adapt_module

    model, params = run
    demos = as_tuple(fam.samples(fam.permutations(NEW, seed=0), 4, seed=3))
    traces = []
    make = adapt_module.make_train_step

    def counting(model, spec):
        step = make(model, spec)
        return lambda *args: traces.append(1) or step(*args)

    monkeypatch.setattr(adapt_module, "make_train_step", counting)
    first = trm_jax.adapt_puzzle_embeddings(model, params, demos, steps=25, rng=7, progress=False)[1]
    assert len(traces) == 1  # 25 steps, one traced (and compiled) step
    again = trm_jax.adapt_puzzle_embeddings(model, params, demos, steps=25, rng=7, progress=False)[1]
    other = trm_jax.adapt_puzzle_embeddings(model, params, demos, steps=25, rng=8, progress=False)[1]
    assert len(traces) == 3  # one step per adaptation, its own: nothing kept in the process between calls
    np.testing.assert_array_equal(np.asarray(first[PUZZLE_EMB]), np.asarray(again[PUZZLE_EMB]))
    assert not np.array_equal(np.asarray(first[PUZZLE_EMB]), np.asarray(other[PUZZLE_EMB]))


def test_train_all_fine_tunes_every_weight(run):
    model, params = run
    demos = fam.samples(fam.permutations(NEW, seed=0), 4, seed=3)
    adapted_model, adapted = trm_jax.adapt_puzzle_embeddings(model, params, demos, steps=10, train="all",
                                                             batch_size=16, progress=False)
    assert set(adapted) == set(params) and adapted_model.num_puzzle_identifiers == max(NEW) + 1
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves({**params, PUZZLE_EMB: 0}),
                                                      jax.tree.leaves({**adapted, PUZZLE_EMB: 0}))]
    assert sum(moved) > len(moved) // 2  # dense weights moved (the run's optimizer, as in training)
    table = np.asarray(adapted[PUZZLE_EMB])
    assert table[min(NEW):].any() and np.isfinite(table).all()
    np.testing.assert_array_equal(table[len(TRAINED) + 1:min(NEW)], 0)
    tokens = np.asarray(predict(adapted_model, adapted, demos["inputs"], puzzle_ids=demos["puzzle_ids"]).tokens)
    assert tokens.shape == demos["inputs"].shape



def test_replay_slots_hold_the_runs_own_samples_with_their_identifiers(trained, monkeypatch):
    """With replay, a fixed share of every step's slots (by default half) takes the run's own training samples
    (here the Trainer's training set), each with its own identifier (a trained row, which trains as well); the
    other slots take adaptation rows."""
    from trm_jax.training import adapt as adapt_module

    model, params, trainer = trained
    new = fam.samples(fam.permutations(NEW, seed=0), 4, seed=3)
    old = training_data()
    batches = []
    make = adapt_module.make_train_step

    def recording(model, spec):
        step = make(model, spec)

        def wrapped(state, carry, batch, key):
            jax.debug.callback(lambda b: batches.append(jax.tree.map(np.asarray, b)), batch)
            return step(state, carry, batch, key)

        return wrapped

    monkeypatch.setattr(adapt_module, "make_train_step", recording)
    steps = 3
    _, adapted = trm_jax.adapt_puzzle_embeddings(model, params, new, steps=steps, train="all", replay_data=trainer,
                                                 batch_size=16, rng=1, progress=False)
    assert len(batches) == steps

    def row_set(d, mask):
        return {(int(p),) + tuple(x) + tuple(y)
                for x, y, p in zip(d["inputs"][mask], d["labels"][mask], d["puzzle_ids"][mask])}

    everything = np.ones(len(old["inputs"]), bool)
    replayed = [np.isin(b["puzzle_ids"], list(TRAINED)) for b in batches]
    for b, mask in zip(batches, replayed):
        np.testing.assert_array_equal(mask, replayed[0])  # the same slots replay at every step
        assert mask.sum() == 8  # the default share, 0.5 of 16
        assert row_set(b, mask) <= row_set(old, everything)
        assert row_set(b, ~mask) <= row_set(new, np.ones(len(new["inputs"]), bool))
    # the replayed identifiers' rows trained like the new ones (every slot takes its first step's row); trained
    # rows never drawn kept theirs
    first = np.unique(batches[0]["puzzle_ids"][replayed[0]])
    drawn = np.unique(np.concatenate([b["puzzle_ids"][m] for b, m in zip(batches, replayed)]))
    assert len(first) > 1
    table, before = np.asarray(adapted[PUZZLE_EMB]), np.asarray(params[PUZZLE_EMB])
    assert all(not np.array_equal(table[i], before[i]) for i in first)
    untouched = np.setdiff1d(np.arange(len(before)), np.concatenate([drawn, [0]]))
    np.testing.assert_array_equal(table[untouched], before[untouched])

    # embeddings-only adaptation replays nothing (it changes no trained identifier's answers)
    batches.clear()
    trm_jax.adapt_puzzle_embeddings(model, params, new, steps=1, replay_data=old, batch_size=16, progress=False)
    assert not np.isin(batches[0]["puzzle_ids"], list(TRAINED)).any()


def test_bad_input_is_one_clear_error(run):
    model, params = run
    demos = fam.samples(fam.permutations(NEW, seed=0), 2, seed=3)
    data = as_tuple(demos)
    adapt = trm_jax.adapt_puzzle_embeddings
    no_table = fam.model(1, puzzle_emb_ndim=0)
    with pytest.raises(TRMError, match="puzzle-embedding table"):
        adapt(no_table, no_table.init_params(jax.random.key(0)), data, steps=5)
    with pytest.raises(TRMError, match="train must be one of"):
        adapt(model, params, data, steps=5, train="dense")
    for steps in (0, -3, 2.5):
        with pytest.raises(TRMError, match="steps must be an integer >= 1"):
            adapt(model, params, data, steps=steps)
    with pytest.raises(TRMError, match=r"inputs must be \[N >= 1, 8\]"):
        adapt(model, params, (demos["inputs"][:, :5], demos["labels"][:, :5], demos["puzzle_ids"]), steps=5)
    with pytest.raises(TRMError, match="labels must have the inputs' shape"):
        adapt(model, params, (demos["inputs"], demos["labels"][:3], demos["puzzle_ids"]), steps=5)
    with pytest.raises(TRMError, match="puzzle_ids must be"):
        adapt(model, params, (demos["inputs"], demos["labels"], demos["puzzle_ids"][:-1]), steps=5)
    with pytest.raises(TRMError, match="outside the vocabulary"):
        adapt(model, params, (demos["inputs"] + fam.VOCAB, demos["labels"], demos["puzzle_ids"]), steps=5)
    with pytest.raises(TRMError, match="must be \\(inputs, labels, puzzle_ids\\)"):
        adapt(model, params, (demos["inputs"], demos["labels"]), steps=5)
    with pytest.raises(TRMError, match="learning_rate must be > 0"):
        adapt(model, params, data, steps=5, learning_rate=0.0)
    old = fam.samples(fam.permutations(TRAINED, seed=0), 2, seed=5)
    for share in (1.0, -0.1, True, "half"):
        with pytest.raises(TRMError, match=r"replay must be the share .* in \[0, 1\)"):
            adapt(model, params, data, steps=5, train="all", replay=share, replay_data=old)
    with pytest.raises(TRMError, match="replay applies to train='all'"):
        adapt(model, params, data, steps=5, replay=0.5, replay_data=old)
    with pytest.raises(TRMError, match="replay needs the run's own training samples"):
        adapt(model, params, data, steps=5, train="all", replay=0.5)
    with pytest.raises(TRMError, match="replay data: puzzle identifiers up to 36, but the model's table has 25 rows"):
        adapt(model, params, data, steps=5, train="all", replay_data=demos)
    with pytest.raises(TRMError, match="replay data: inputs must be"):
        adapt(model, params, data, steps=5, train="all", replay_data=(old["inputs"][:, :5], old["labels"][:, :5],
                                                                      old["puzzle_ids"]))
    with pytest.raises(TRMError, match="replay needs batch_size >= 2"):
        adapt(model, params, data, steps=5, train="all", replay_data=old, batch_size=1)


ON_DEVICES = """
import sys, numpy as np, jax, _adapt_family as fam, trm_jax
model = fam.model(5)
params = model.init_params(jax.random.key(0))
params["puzzle_emb"] = np.random.default_rng(0).normal(0, 0.1, params["puzzle_emb"].shape).astype(np.float32)
demos = fam.samples(fam.permutations(range(5, 9), seed=0), 4, seed=3)
_, out = trm_jax.adapt_puzzle_embeddings(model, params, demos, steps=6, batch_size=8, rng=3, progress=False)
np.save(sys.argv[1], np.asarray(out["puzzle_emb"]))
print(jax.local_device_count())
"""


def test_two_devices_adapt_as_one(tmp_path):
    """Each step's rows are drawn for the whole batch and the row gradients gathered over devices, so two
    emulated devices train the same rows as one."""
    import os
    import subprocess
    import sys

    tables = []
    for devices in (1, 2):
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=TESTS,
                   XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}")  # conftest's flags
        out = tmp_path / f"table{devices}.npy"
        proc = subprocess.run([sys.executable, "-c", ON_DEVICES, str(out)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.split()[-1] == str(devices)
        tables.append(np.load(out))
    one, two = tables
    assert not np.allclose(one[5], one[6])  # the new rows start equal (the mean) and trained apart
    np.testing.assert_allclose(two, one, atol=1e-6)


def test_adapt_replays_the_runs_training_set_with_train_all(monkeypatch, caplog):
    """trm_jax.adapt (a run's TRMParams): train="all" replays the run's training set as its task builds it;
    replay=0, embeddings-only adaptation or a training set the task cannot build replay nothing (the last with a
    warning, or an error where replay was asked for); scripts/adapt.py passes --replay through."""
    import logging

    from trm_jax import adaptation
    from trm_jax.config import TRMConfig
    from trm_jax.data import ArrayDataset
    from trm_jax.inference import TRMParams

    demos = fam.samples(fam.permutations(NEW, seed=0), 2, seed=3)
    own = ArrayDataset(difficulty=np.zeros(len(demos["inputs"])), **demos)
    model = fam.model(len(TRAINED) + 1)
    params = TRMParams(params={}, config=TRMConfig(), num_tokens=fam.VOCAB, seq_len=fam.SEQ_LEN)
    monkeypatch.setattr(TRMParams, "model", property(lambda self: model))

    class Task:
        train_set = own
        built = 0

        def adaptation_data(self, params, puzzles, seed=None):
            return demos, "adapted tasks"

        def datasets(self, tokenizer, *, seq_len):
            Task.built += 1
            if isinstance(self.train_set, Exception):
                raise self.train_set
            return self.train_set, None

    calls = []
    monkeypatch.setattr(adaptation, "get_task", lambda config: Task())
    monkeypatch.setattr(adaptation, "adapt_puzzle_embeddings",
                        lambda model, params, data, **kw: calls.append(kw) or (model, params))

    adapted = trm_jax.adapt(params, None, steps=3, train="all")
    assert calls[-1]["replay_data"] is own and calls[-1]["replay"] is None and adapted.adaptation == "adapted tasks"
    trm_jax.adapt(params, None, steps=3, train="all", replay=0.25)
    assert calls[-1]["replay_data"] is own and calls[-1]["replay"] == 0.25
    built = Task.built
    trm_jax.adapt(params, None, steps=3, train="all", replay=0)
    trm_jax.adapt(params, None, steps=3)
    assert Task.built == built and calls[-1]["replay_data"] is None and calls[-2]["replay_data"] is None

    Task.train_set = TRMError("the run's build is not in data.cache_dir")
    with caplog.at_level(logging.WARNING, logger="trm_jax.adaptation"):
        trm_jax.adapt(params, None, steps=3, train="all")
    assert calls[-1]["replay_data"] is None and "without replay" in caplog.text and "cache_dir" in caplog.text
    with pytest.raises(TRMError, match="replay needs the run's training set, but it could not be built"):
        trm_jax.adapt(params, None, steps=3, train="all", replay=0.5)
    Task.train_set = ArrayDataset(inputs=demos["inputs"], labels=demos["labels"], difficulty=np.zeros(len(own)))
    with pytest.raises(TRMError, match="its samples carry no puzzle identifiers"):
        trm_jax.adapt(params, None, steps=3, train="all", replay=0.5)

    from _scripts import load_script
    from trm_jax import inference

    Task.train_set = own
    monkeypatch.setattr(inference, "load", lambda run, **kw: params)
    monkeypatch.setattr(adaptation, "save_adapted_run", lambda p, out: out)
    load_script("adapt").main(["--run", "r", "--out", "o", "--train", "all", "--replay", "0.3", "--steps", "2"])
    assert calls[-1]["replay"] == 0.3 and calls[-1]["replay_data"] is own and calls[-1]["train"] == "all"
