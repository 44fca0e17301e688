"""Checkpoint/resume: an interrupted (SIGTERM) and resumed run equals an uninterrupted one; run-dir
contents and metrics.jsonl records."""

import json
import os
import pathlib

import jax
import numpy as np
import pytest
from _train_helpers import (
    result_as_json,
    result_from_json,
    sigterm_at_step,
    tiny_config,
    tiny_trainer,
    train_losses,
)

from trm_jax.errors import TRMError
from trm_jax.training import read_metrics

STEPS = 8
# dropout and halt exploration on: the resumed run must also continue the random streams
SECTIONS = dict(model=dict(dropout=0.1), training=dict(steps=STEPS, checkpoint_every=3, eval_every=4))


RESULT_FIELDS = ("step", "interrupted", "eval", "params")


def _runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("resume")
    full = tiny_trainer(tiny_config(base / "full", **SECTIONS)).train()

    # interrupted: SIGTERM arrives while step 5 is logged -> checkpoint at 5, clean stop
    cut_dir = base / "cut"
    trainer = tiny_trainer(tiny_config(cut_dir, **SECTIONS))
    sigterm_at_step(trainer, 5)
    cut = trainer.train()
    cut_losses = train_losses(cut_dir)
    cut_ckpts = sorted(int(d) for d in os.listdir(cut_dir / "checkpoints") if d.isdigit())
    resumed = tiny_trainer(tiny_config(cut_dir, **SECTIONS), resume=True).train()
    return dict(full=result_as_json(full, *RESULT_FIELDS), cut=result_as_json(cut, *RESULT_FIELDS),
                cut_losses=cut_losses, cut_ckpts=cut_ckpts, resumed=result_as_json(resumed, *RESULT_FIELDS),
                base=str(base))


@pytest.fixture(scope="module")
def runs(once, tmp_path_factory):
    """The uninterrupted run, the SIGTERMed one and its resume; computed once in the session (under xdist the
    module's tests land on both workers): results as JSON, params as arrays again."""
    out = once("resume_runs", lambda: _runs(tmp_path_factory))
    out["base"] = pathlib.Path(out["base"])
    for name in ("full", "cut", "resumed"):
        out[name] = result_from_json(out[name])
    return out


def test_sigterm_saves_and_stops(runs):
    cut = runs["cut"]
    assert cut.interrupted and cut.step == 5
    assert runs["cut_ckpts"] == [3, 5]  # the periodic one and the one written on the signal
    assert len(runs["cut_losses"]) == 5


def test_resume_matches_uninterrupted_run(runs):
    full, resumed = runs["full"], runs["resumed"]
    assert not resumed.interrupted and resumed.step == full.step == STEPS
    a, b = train_losses(runs["base"] / "full"), train_losses(runs["base"] / "cut")
    assert len(a) == len(b) == STEPS  # records past the checkpoint were not duplicated
    np.testing.assert_allclose(b, a, rtol=1e-6)
    np.testing.assert_allclose(b[:5], runs["cut_losses"], rtol=1e-6)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), resumed.params, full.params)
    assert resumed.eval["exact_accuracy"] == full.eval["exact_accuracy"]


def test_run_dir_layout_and_metrics_records(runs):
    run = runs["base"] / "full"
    assert {"config.yaml", "checkpoints", "metrics.jsonl", "train.log"} <= set(os.listdir(run))
    recs = read_metrics(run / "metrics.jsonl", split=None)
    train = [r for r in recs if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    for key in ("step", "epoch", "stage", "loss", "ce", "halt_loss", "token_accuracy", "exact_accuracy",
                "recursion_depth", "tokens_per_sec", "lr", "timestamp"):
        assert key in train[0], key
    r = train[-1]
    assert r["stage"] == 0 and r["epoch"] == pytest.approx(STEPS * 8 / 256)
    assert r["loss"] == pytest.approx(r["ce"] + r["halt_loss"], rel=1e-5)  # halt_loss_weight 1
    assert r["tokens_per_sec"] > 0 and 0 <= r["token_accuracy"] <= 1
    assert "cpu_percent" in [x for x in train if x["step"] == 4][0]  # monitor reading every 4 steps
    evals = [x for x in recs if x["split"] == "eval"]
    assert [e["step"] for e in evals] == [4, STEPS]
    assert {"exact_accuracy", "token_accuracy", "recursion_depth"} <= set(evals[-1])
    assert 1 <= evals[-1]["recursion_depth"] <= 3
    # metrics.jsonl writes a NaN (settled_exact_accuracy when no answer settled) as null
    logged = {k: float("nan") if v is None else v for k, v in evals[-1].items()
              if k not in ("split", "step", "stage", "timestamp")}
    assert runs["full"].eval == pytest.approx(logged, nan_ok=True)
    meta = json.load(open(run / "checkpoints" / str(STEPS) / "meta" / "metadata"))
    assert meta["step"] == STEPS and meta["stage"] == 0 and meta["iterator"]["position"] == (STEPS * 8) % 256


def test_existing_run_needs_resume_flag(runs):
    with pytest.raises(TRMError, match="already holds checkpoints.*--resume"):
        tiny_trainer(tiny_config(runs["base"] / "full", **SECTIONS)).train()


def test_overwrite_starts_over(tmp_path):
    cfg = tiny_config(tmp_path, **SECTIONS)  # the settings of the runs above: the compiled step is reused
    first = tiny_trainer(cfg).train()
    again = tiny_trainer(cfg, overwrite=True).train()
    assert again.step == STEPS and [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == \
        list(range(1, STEPS + 1))
    jax.tree.map(np.testing.assert_array_equal, again.params, first.params)


def test_resume_with_changed_model_is_rejected(runs):
    sections = dict(SECTIONS, model=dict(dropout=0.1, dim=24))
    with pytest.raises(TRMError, match="'model' differs"):
        tiny_trainer(tiny_config(runs["base"] / "full", **sections), resume=True)


def test_resume_of_a_run_from_before_ema_warmup_keeps_its_constant_ema(runs, tmp_path):
    """A run directory whose config.yaml predates training.ema_warmup trained with a constant EMA
    decay: resuming it with the warm-up (the new default) would change its EMA mid-run."""
    import shutil

    import yaml

    old = tmp_path / "old"
    shutil.copytree(runs["base"] / "full", old)
    raw = yaml.safe_load((old / "config.yaml").read_text())
    raw["training"].pop("ema_warmup")
    raw["run_dir"] = str(old)
    (old / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(TRMError, match="constant EMA decay.*training.ema_warmup=false"):
        tiny_trainer(tiny_config(old, **SECTIONS), resume=True)
    sections = dict(SECTIONS, training=dict(SECTIONS["training"], ema_warmup=False))
    tiny_trainer(tiny_config(old, **sections), resume=True).close()  # the fix the message gives is accepted
