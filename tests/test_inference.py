"""load/infer/evaluate on a tiny trained run dir, and the infer/evaluate CLIs; settled halting and the task's
verifier through infer and evaluate."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from trm_jax.data.text import decode_prediction
from trm_jax.errors import TRMError
from trm_jax.inference import TRMParams, as_trm_params, infer, load, with_halting
from trm_jax.models import init_params, make_model, predict, predict_trajectories
from trm_jax.tasks import get_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run(tiny_run):
    return tiny_run


def queries(params, n):
    return [s["query"] for s in get_task(params.config).samples("eval")[:n]]


def test_load_restores_trained_ema_params(run):
    run_dir, result = run
    p = load(run_dir)
    assert isinstance(p, TRMParams) and p.step == 6 and p.seq_len == 32
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6), p.params,
                 result.params)
    # it is a pytree of arrays: tree ops keep the metadata
    doubled = jax.tree.map(lambda a: a * 2, p)
    assert isinstance(doubled, TRMParams) and doubled.tokenizer is p.tokenizer
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(p))
    raw = load(run_dir, use_ema=False)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(raw.params), jax.tree.leaves(p.params)))
    older = load(run_dir, step=3)
    assert older.step == 3
    with pytest.raises(TRMError, match="available steps"):
        load(run_dir, step=999)


def test_infer_matches_predict_and_batch_equals_single(run):
    p = load(run[0])
    qs = queries(p, 5)
    details = infer(p, qs, return_details=True)
    assert [d["answer"] for d in details] == [infer(p, q) for q in qs]
    ids = np.zeros((8, p.seq_len), np.int32)
    for i, q in enumerate(qs):
        enc = p.tokenizer.encode(q)
        ids[i, :len(enc)] = enc
    pred = predict(p.model, p.params, ids)
    for i, d in enumerate(details):
        assert d["answer"] == decode_prediction(p.tokenizer, np.asarray(pred.tokens[i]))
        assert d["recursion_depth"] == int(pred.recursion_depth[i]) and 1 <= d["recursion_depth"] <= 3
        assert 0.0 <= d["halt_prob"] <= 1.0 and d["contexts"] == []
    capped = infer(p, qs, max_recursion_depth=1, halt_threshold=2.0, return_details=True)
    assert all(d["recursion_depth"] == 1 for d in capped)


def test_raw_params_need_config(run):
    p = load(run[0])
    with pytest.raises(TRMError, match="config="):
        infer(p.params, "abc(1)")
    q = queries(p, 1)[0]
    assert infer(p.params, q, config=p.config, tokenizer=p.tokenizer) == infer(p, q)
    wrong = p.config.replace(model=p.config.model.__class__(**{**p.config.model.__dict__, "dim": 24}))
    with pytest.raises(TRMError, match="another config"):
        infer(p.params, q, config=wrong, tokenizer=p.tokenizer)


def test_bad_inputs_are_clear_errors(run, tmp_path):
    p = load(run[0])
    with pytest.raises(TRMError, match="empty"):
        infer(p, "   ")
    with pytest.raises(TRMError, match="strings"):
        infer(p, [1, 2])
    with pytest.raises(TRMError, match="not a trm_jax run directory"):
        load(tmp_path)
    long = infer(p, "x" * 500)  # truncated to seq_len (data.truncation: truncate) with a warning
    assert isinstance(long, str)


def test_repeated_calls_do_not_recompile(run):
    from trm_jax.models.predict import _predict_jit

    p = load(run[0])
    qs = queries(p, 8)
    for n in (1, 2, 3, 4, 5, 8):  # buckets 1, 2, 4, 8
        infer(p, qs[:n])
    size = _predict_jit._cache_size()
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 3, 1):
        infer(p, qs[:n], halt_threshold=0.3 + 0.05 * n, max_recursion_depth=1 + n % 3)
    assert _predict_jit._cache_size() == size


def test_evaluate_matches_direct_computation(run):
    from trm_jax.evaluation import dataset_for, evaluate

    p = load(run[0])
    ds = dataset_for(p)
    res = evaluate(p, ds, batch_size=16)
    pred = predict(p.model, p.params, ds.inputs)
    valid = ds.labels != -100
    correct = (np.asarray(pred.tokens) == ds.labels) & valid
    assert res["num_samples"] == len(ds) == 40
    np.testing.assert_allclose(res["exact_accuracy"], np.mean(correct.sum(-1) == valid.sum(-1)))
    np.testing.assert_allclose(res["token_accuracy"], correct.sum() / valid.sum())
    np.testing.assert_allclose(res["recursion_depth"], np.mean(np.asarray(pred.recursion_depth)))
    assert sum(b["count"] for b in res["by_difficulty"]) == 40


def encoded(p, qs, rows=8):
    ids = np.zeros((rows, p.seq_len), np.int32)
    for i, q in enumerate(qs):
        enc = p.tokenizer.encode(q)
        ids[i, :len(enc)] = enc
    return ids


def test_settled_halting_through_infer_and_evaluate(run):
    """infer and evaluate with halting="settled" give predict's answers, depths and settled flags; the model's
    own `halting` (its config) is the default."""
    from trm_jax.evaluation import dataset_for, evaluate

    p = load(run[0])
    qs = queries(p, 5)
    opts = dict(halting="settled", settle_steps=2, max_recursion_depth=8)
    details = infer(p, qs, return_details=True, **opts)
    pred = predict(p.model, p.params, encoded(p, qs), **opts)
    assert int(np.max(pred.recursion_depth)) > 3  # beyond the trained cap of 3: the head does not stop them
    for i, d in enumerate(details):
        assert d["answer"] == decode_prediction(p.tokenizer, np.asarray(pred.tokens[i]))
        assert d["recursion_depth"] == int(pred.recursion_depth[i]) and d["settled"] is bool(pred.settled[i])
        assert "verified" not in d  # the code task has no verifier
    # the run's model.halting / model.settle_steps are infer's defaults
    configured = with_halting(p, "settled", 2)
    assert configured.model.halting == "settled" and configured.model.settle_steps == 2
    assert infer(configured, qs, max_recursion_depth=8) == [d["answer"] for d in details]
    assert infer(configured, qs, max_recursion_depth=8, halting="head") == infer(p, qs, max_recursion_depth=8)
    # with the head, settled = the head stopped the sample before the cap
    head = infer(p, qs, return_details=True)
    head_pred = predict(p.model, p.params, encoded(p, qs))
    assert [d["settled"] for d in head] == [bool(s) for s in np.asarray(head_pred.settled)[:5]]

    ds = dataset_for(p)
    res = evaluate(p, ds, batch_size=16, **opts)
    pred = predict(p.model, p.params, ds.inputs, **opts)
    valid = ds.labels != -100
    exact = ((np.asarray(pred.tokens) == ds.labels) | ~valid).all(-1)
    settled = np.asarray(pred.settled)
    assert 0 < settled.sum() < len(settled)  # some samples settle, others run to the cap
    np.testing.assert_allclose(res["recursion_depth"], np.mean(np.asarray(pred.recursion_depth)))
    np.testing.assert_allclose(res["settled_fraction"], settled.mean())
    np.testing.assert_allclose(res["settled_exact_accuracy"], exact[settled].mean())
    np.testing.assert_allclose(res["exact_accuracy"], exact.mean())
    assert "verified_fraction" not in res
    np.testing.assert_equal(evaluate(configured, ds, batch_size=16, max_recursion_depth=8), res)
    # a depth cap in the thousands: every sample settles long before it (the loop keeps no per-step history)
    deep = evaluate(p, ds, batch_size=16, halting="settled", settle_steps=2, max_recursion_depth=5000)
    assert deep["settled_fraction"] == 1.0 and deep["recursion_depth"] < 20


def test_bad_halting_and_selection_options_are_clear_errors(run):
    from trm_jax.evaluation import evaluate

    p = load(run[0])
    q = queries(p, 1)
    for kwargs, match in [(dict(halting="ACT"), r"halting must be one of \('head', 'settled'\)"),
                          (dict(halting="settled", settle_steps=0), "settle_steps must be an int >= 1"),
                          (dict(select="verify"), "select='verify': the 'code' task has no verifier")]:
        with pytest.raises(TRMError, match=match):
            infer(p, q, **kwargs)
        with pytest.raises(TRMError, match=match):
            evaluate(p, **kwargs)


def sudoku_params(max_recursion_depth=12):
    """TRMParams of an untrained Sudoku model with a random halting head (mixed halting steps)."""
    from trm_jax.config import TRMConfig

    cfg = TRMConfig.from_dict(dict(model=dict(dim=16, depth=1, num_refinement_blocks=2, num_latent_refinements=1,
                                              max_recursion_depth=max_recursion_depth),
                                   data=dict(task="sudoku", seq_len=81, num_train=8, num_eval=16)))
    tok, vocab, _ = get_task(cfg).tokenizer()
    weights = init_params(make_model(cfg.model, vocab, 81), jax.random.key(0))
    weights["to_halt_pred"]["kernel"] = 2.0 * jax.random.normal(jax.random.key(1), (16, 1))
    return as_trm_params(weights, config=cfg, tokenizer=tok)


def test_verify_selection_through_infer_and_evaluate(monkeypatch):
    """select="verify" hands the task's verifier to predict, which picks a trajectory it accepts; every answer's
    `verified` is the verifier's verdict (the real Sudoku one: an untrained model solves nothing)."""
    from trm_jax.evaluation import evaluate
    from trm_jax.tasks.sudoku.task import SudokuTask

    p = sudoku_params()
    task = get_task(p.config)
    puzzles = [s["input"] for s in task.samples("eval")]  # the rows of the eval split, in order
    details = infer(p, puzzles[:6], halting="settled", return_details=True)
    assert all(d["verified"] is task.verify(q, d["answer"]) is False for q, d in zip(puzzles, details))
    assert all(isinstance(d["settled"], bool) for d in details)

    opts = dict(trajectories=4, noise_std=1.0, max_recursion_depth=6)
    ids = task.encode(puzzles, p.tokenizer, 81)[0]
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(0), np.arange(len(ids)))  # infer's, seed 0
    every = np.asarray(predict_trajectories(p.model, p.params, ids, rng=keys, **opts).tokens)
    target = {ids[b].tobytes(): every[3, b, 0] for b in range(len(ids))}  # the first cell trajectory 3 ends on
    # a stand-in verifier: accepts the answers whose first cell is trajectory 3's
    monkeypatch.setattr(SudokuTask, "verifier", lambda self, tok: lambda q, a: a[0] == target.get(q.tobytes()))
    chosen = infer(p, puzzles[:6], select="verify", return_details=True, **opts)
    assert all(d["verified"] for d in chosen)
    assert [p.tokenizer.encode(d["answer"][0])[0] for d in chosen] == list(every[3, :6, 0])
    voted = infer(p, puzzles[:6], select="vote", return_details=True, **opts)
    assert not all(d["verified"] for d in voted)  # the vote alone picks another trajectory somewhere
    res = evaluate(p, select="verify", batch_size=16, **opts)
    assert res["verified_fraction"] == 1.0 and res["num_samples"] == len(puzzles) == 16


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, input=stdin,
                          timeout=300)


def test_infer_and_evaluate_cli(run, tmp_path, capsys, monkeypatch):
    """The first call runs the script as a user does (a process through the launcher); the others call its
    main in this process (same code, no second start-up and compile)."""
    import io

    from _scripts import load_script

    run_dir = run[0]
    p = load(run_dir)
    qs = queries(p, 2)
    out = _cli("scripts/infer.py", "--run", run_dir, "--text", qs[0], "--text", qs[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == infer(p, qs)
    out = _cli("scripts/infer.py", "--run", str(tmp_path), "--text", "x")
    assert out.returncode != 0 and "not a trm_jax run directory" in out.stderr and "Traceback" not in out.stderr

    infer_main, evaluate_main = load_script("infer").main, load_script("evaluate").main
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(qs) + "\n"))
    infer_main(["--run", run_dir, "--details"])
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == qs and all("recursion_depth" in r for r in rows)
    infer_main(["--run", run_dir, "--text", qs[0], "--details", "--halting", "settled", "--settle-steps", "2",
                "--max-recursion-depth", "8"])
    assert json.loads(capsys.readouterr().out) == dict(text=qs[0], **infer(p, qs[0], return_details=True,
                                                                           halting="settled", settle_steps=2,
                                                                           max_recursion_depth=8))

    evaluate_main(["--run", run_dir, "--out", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["num_samples"] == 40 and f"exact {res['exact_accuracy']:.4f}" in printed
    assert f"settled {res['settled_fraction']:.4f}" in printed


def test_the_scripts_share_the_test_time_flags():
    import argparse

    from trm_jax.inference import add_trajectory_arguments, trajectory_options

    ap = argparse.ArgumentParser()
    add_trajectory_arguments(ap)
    args = ap.parse_args(["--halting", "settled", "--settle-steps", "3", "--select", "verify"])
    assert trajectory_options(args) == dict(trajectories=1, noise_std=None, select="verify", seed=0,
                                            halting="settled", settle_steps=3)
    assert trajectory_options(ap.parse_args([]))["halting"] is None  # the run's model.halting
    for bad in (["--halting", "ACT"], ["--select", "best"]):
        with pytest.raises(SystemExit):
            ap.parse_args(bad)


def test_read_only_checkpointer_reads_weights_and_changes_nothing(run, tmp_path):
    """`Checkpointer(read_only=True).restore_weights`, the read path of `load`: the same weights as
    `load`, only the asked-for tree, and the directory untouched (a leftover temporary directory of
    a killed save stays; `save` is refused)."""
    import shutil

    from trm_jax.training import Checkpointer

    ckpt_dir = tmp_path / "checkpoints"
    shutil.copytree(os.path.join(run[0], "checkpoints"), ckpt_dir)
    (ckpt_dir / "7.orbax-checkpoint-tmp-123").mkdir()  # as a run killed during an async save leaves it
    before = sorted(os.listdir(ckpt_dir))
    p = load(run[0], use_ema=False)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p.params)
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
        assert ckpt.candidate_steps() == sorted(ckpt.all_steps(), reverse=True) and ckpt.candidate_steps(3) == [3]
        step, weights = ckpt.restore_weights(shapes, which="params")
        assert step == p.step and all(isinstance(x, np.ndarray) for x in jax.tree.leaves(weights))
        jax.tree.map(np.testing.assert_array_equal, weights, jax.device_get(p.params))
        with pytest.raises(TRMError, match="which="):
            ckpt.restore_weights(shapes, which="opt_state")
        with pytest.raises(TRMError, match="read-only"):
            ckpt.save(99, {"x": np.zeros(1)}, {})
    assert sorted(os.listdir(ckpt_dir)) == before
