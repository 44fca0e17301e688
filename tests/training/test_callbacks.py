"""Trainer callbacks: hook order, metrics only when asked, a stop requested by a callback then --resume
continuing the same trajectory; early stopping, the best checkpoint (load(which="best"), evaluate.py
--which best), the time budget (a fake clock), and their config keys."""

import dataclasses
import json
import os
import pathlib
import types

import jax
import numpy as np
import pytest
from _scripts import load_script
from _train_helpers import as_json, result_as_json, result_from_json, tiny_config, tiny_trainer, train_losses
from conftest import TINY_RUN

from trm_jax.config import EarlyStoppingConfig, TRMConfig
from trm_jax.data.datasets import IGNORE_LABEL
from trm_jax.errors import ConfigError, TRMError
from trm_jax.inference import load
from trm_jax.models import NO_EARLY_HALT, predict
from trm_jax.training import Callback, EarlyStopping, KeepBest, TimeBudget, read_metrics
from trm_jax.training import distributed as dist
from trm_jax.training import create_trainer as make
from trm_jax.training.callbacks import config_callbacks
from trm_jax.training.state import inference_params

STEPS = 8
SECTIONS = dict(training=dict(steps=STEPS, checkpoint_every=3, eval_every=4))


class Recorder(Callback):
    def __init__(self, every=0):
        self.metrics_every, self.calls = every, []

    def on_train_start(self, trainer):
        self.calls.append(("start", trainer.step))

    def on_step(self, trainer, step, metrics):
        self.calls.append(("step", step, metrics))

    def on_eval(self, trainer, step, results):
        self.calls.append(("eval", step, results))

    def on_train_end(self, trainer, result):
        self.calls.append(("end", result.step))


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step(self, trainer, step, metrics):
        if step == self.step:
            trainer.request_stop(f"test stop at {step}")


RESULT_FIELDS = ("step", "interrupted", "stop_reason", "eval", "params", "raw_params")


def _runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("callbacks")
    quiet, every3 = Recorder(), Recorder(every=3)
    full = tiny_trainer(tiny_config(base / "full", **SECTIONS), callbacks=[quiet, every3]).train()
    cut = tiny_trainer(tiny_config(base / "cut", **SECTIONS), callbacks=[StopAt(5)]).train()
    cut_ckpts = sorted(int(d) for d in os.listdir(base / "cut" / "checkpoints") if d.isdigit())
    resumed = tiny_trainer(tiny_config(base / "cut", **SECTIONS), resume=True).train()
    return dict(base=str(base), full=result_as_json(full, *RESULT_FIELDS), quiet=as_json(quiet.calls),
                every3=as_json(every3.calls), cut=result_as_json(cut, *RESULT_FIELDS), cut_ckpts=cut_ckpts,
                resumed=result_as_json(resumed, *RESULT_FIELDS))


@pytest.fixture(scope="module")
def runs(once, tmp_path_factory):
    """The full run (two recorders), the one a callback stops at 5 and its resume; computed once in the session
    (under xdist the module's tests land on both workers): results as JSON, params as arrays again."""
    out = once("callbacks_runs", lambda: _runs(tmp_path_factory))
    out["base"] = pathlib.Path(out["base"])
    for name in ("quiet", "every3"):
        out[name] = types.SimpleNamespace(calls=[tuple(c) for c in out[name]])
    for name in ("full", "cut", "resumed"):
        out[name] = result_from_json(out[name])
    return out


def test_hooks_run_in_order_with_metrics_only_when_asked(runs):
    calls = runs["quiet"].calls
    assert calls[0] == ("start", 0) and calls[-1] == ("end", STEPS)
    assert [c[0] for c in calls[1:-1]] == ["step"] * 4 + ["eval"] + ["step"] * 4 + ["eval"]
    assert [c[1] for c in calls if c[0] == "step"] == list(range(1, STEPS + 1))
    assert all(c[2] is None for c in calls if c[0] == "step")  # metrics_every = 0: never read back
    evals = [c for c in calls if c[0] == "eval"]
    assert [e[1] for e in evals] == [4, STEPS]
    assert evals[-1][2] == runs["full"].eval and evals[0][2]["num_samples"] == 32

    asked = {c[1]: c[2] for c in runs["every3"].calls if c[0] == "step"}
    assert [s for s, m in asked.items() if m is not None] == [3, 6]
    # log_every = 1: each metrics.jsonl record is one step's summary, what the callback was given
    records = {r["step"]: r for r in read_metrics(runs["base"] / "full" / "metrics.jsonl")}
    for s in (3, 6):
        for key in ("loss", "ce", "halt_loss", "token_accuracy", "exact_accuracy", "lr", "grad_norm"):
            assert asked[s][key] == pytest.approx(records[s][key], rel=1e-6), key


def test_a_callback_stops_with_a_checkpoint_and_resume_continues_the_trajectory(runs):
    cut, resumed, full = runs["cut"], runs["resumed"], runs["full"]
    assert cut.interrupted and cut.step == 5 and cut.stop_reason == "test stop at 5"
    assert runs["cut_ckpts"] == [3, 5]  # the periodic one and the one written on the stop
    assert not resumed.interrupted and resumed.step == STEPS and resumed.stop_reason is None
    np.testing.assert_allclose(train_losses(runs["base"] / "cut"), train_losses(runs["base"] / "full"), rtol=1e-6)
    for got, want in ((resumed.params, full.params), (resumed.raw_params, full.raw_params)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)


def test_plain_objects_are_callbacks_with_only_the_hooks_they_have(tmp_path):
    """docs/training.md: any object with any of the hooks; one it lacks (or metrics_every, state_dict) is skipped."""

    class Stop:  # only on_step, no base class
        def on_step(self, trainer, step, metrics):
            if step == 3:
                trainer.request_stop("plain stop")

    class Losses:  # on_step with metrics_every
        metrics_every = 2

        def __init__(self):
            self.seen = []

        def on_step(self, trainer, step, metrics):
            self.seen.append((step, None if metrics is None else round(metrics["loss"], 6)))

    class Evals:  # only on_eval
        def __init__(self):
            self.steps = []

        def on_eval(self, trainer, step, results):
            self.steps.append(step)

    losses, evals = Losses(), Evals()
    result = tiny_trainer(tiny_config(tmp_path, training=dict(steps=STEPS, eval_every=2)),
                          callbacks=[Stop(), losses, evals]).train()
    assert result.interrupted and result.step == 3 and result.stop_reason == "plain stop"
    assert [s for s, loss in losses.seen if loss is not None] == [2] and [s for s, _ in losses.seen] == [1, 2, 3]
    assert evals.steps == [2]
    meta = json.load(open(tmp_path / "checkpoints" / "3" / "meta" / "metadata"))
    assert meta["callbacks"] == {}  # none has a state_dict
    with pytest.raises(TRMError, match="callbacks: .*none of the hooks on_train_start, on_step"):
        tiny_trainer(tiny_config(tmp_path / "none"), callbacks=[object()])


# ------------------------------------------------------------------------------------- early stopping

def _fake_trainer(**kw):
    stops = []
    return types.SimpleNamespace(request_stop=lambda reason, **k: stops.append(reason), stops=stops, **kw)


def test_early_stopping_counts_evaluations_without_improvement():
    es, t = EarlyStopping("exact_accuracy", patience=2, min_delta=0.01), _fake_trainer()
    for step, value in enumerate([0.10, 0.20, 0.205, 0.30, 0.30, 0.309], start=1):
        es.on_eval(t, step, {"exact_accuracy": value, "token_accuracy": 0.5})
    # 0.205 and 0.309 do not beat the best by more than min_delta; 0.30 -> 0.30 -> 0.309: two in a row
    assert len(t.stops) == 1 and "exact_accuracy has not improved on 0.3000 (step 4) for 2 evaluations" in t.stops[0]
    assert es.state_dict() == dict(best=0.30, best_step=4, waited=2)

    depth, t = EarlyStopping("recursion_depth", patience=1), _fake_trainer()  # lower is better
    depth.on_eval(t, 1, {"recursion_depth": 3.0})
    depth.on_eval(t, 2, {"recursion_depth": 2.5})
    assert not t.stops
    depth.on_eval(t, 3, {"recursion_depth": 2.7})
    assert len(t.stops) == 1
    with pytest.raises(ConfigError, match="'training.early_stopping.metric'.*no metric 'bleu'"):
        EarlyStopping("bleu").on_eval(t, 1, {"exact_accuracy": 0.1})


def test_early_stopping_stops_a_run_and_a_resume_keeps_its_patience(tmp_path):
    # min_delta 1: nothing improves after the first evaluation, so patience 2 stops at the third
    cfg = tiny_config(tmp_path, training=dict(steps=STEPS, eval_every=1, early_stopping=dict(
        metric="token_accuracy", patience=2, min_delta=1.0)))
    first = tiny_trainer(cfg).train()
    assert first.interrupted and first.step == 3 and "early stopping: token_accuracy" in first.stop_reason
    assert [e["step"] for e in first.eval_history] == [1, 2, 3] and first.eval == first.eval_history[-1]
    meta = json.load(open(tmp_path / "checkpoints" / "3" / "meta" / "metadata"))
    assert meta["callbacks"]["EarlyStopping"]["waited"] == 2
    again = tiny_trainer(cfg, resume=True).train()  # the patience is spent: one more evaluation stops it
    assert again.interrupted and again.step == 4 and "for 3 evaluations" in again.stop_reason


# ---------------------------------------------------------------------------------------- best checkpoint

@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    """The tiny code-task run of conftest, 8 steps, evaluated every 2, the best token accuracy kept."""
    run = tmp_path_factory.mktemp("best") / "run"
    cfg = dict(TINY_RUN, run_dir=str(run), training=dict(TINY_RUN["training"], steps=STEPS, eval_every=2,
                                                         checkpoint_every=2, keep_checkpoints=2,
                                                         keep_best="token_accuracy"))
    trainer = make(cfg)
    return run, trainer, trainer.train()


def test_keep_best_keeps_the_best_evaluation_beside_the_latest(best_run):
    run, trainer, result = best_run
    history = result.eval_history
    values = [e["token_accuracy"] for e in history]
    best_step = history[int(np.argmax(values))]["step"]  # the first evaluation reaching the maximum
    assert sorted(int(d) for d in os.listdir(run / "checkpoints") if d.isdigit()) == [6, 8]  # keep_checkpoints=2
    assert [int(d) for d in os.listdir(run / "best") if d.isdigit()] == [best_step]  # not rotated away
    best = load(run, which="best")
    assert best.step == best_step and load(run).step == STEPS
    # the kept weights are the evaluated ones: evaluating them again gives the recorded result
    assert trainer.evaluate(best.params)["token_accuracy"] == max(values)
    meta = json.load(open(run / "best" / str(best_step) / "meta" / "metadata"))
    assert meta["best"] == dict(metric="token_accuracy", value=max(values))


def test_evaluate_script_which_best(best_run, tmp_path):
    run, _, result = best_run
    script = load_script("evaluate")
    script.main(["--run", str(run), "--which", "best", "--out", str(tmp_path / "best.json")])
    out = json.loads((tmp_path / "best.json").read_text())
    assert out["checkpoint"] == "best" and out["step"] == load(run, which="best").step
    assert out["token_accuracy"] == pytest.approx(max(e["token_accuracy"] for e in result.eval_history))


def test_keep_best_on_resume_drops_what_lies_past_the_run(best_run, tmp_path):
    run, trainer, result = best_run
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best_step = load(copy, which="best").step
    eval_set = trainer.stage.eval_set
    kept = KeepBest("token_accuracy")
    kept.on_train_start(_fake_trainer(run_dir=str(copy), step=best_step, stage=types.SimpleNamespace(eval_set=eval_set)))
    assert kept.best.value == max(e["token_accuracy"] for e in result.eval_history) and kept.best.step == best_step
    earlier = KeepBest("token_accuracy")  # a run resumed before the best step redoes it: the best goes
    earlier.on_train_start(_fake_trainer(run_dir=str(copy), step=best_step - 1,
                                         stage=types.SimpleNamespace(eval_set=eval_set)))
    assert earlier.best.value is None
    with pytest.raises(TRMError, match="has no best checkpoint.*training.keep_best"):
        load(copy, which="best")


def test_load_which_is_checked(best_run, tmp_path):
    run, _, _ = best_run
    with pytest.raises(TRMError, match="which='newest'.*'latest'.*'best'"):
        load(run, which="newest")


# ------------------------------------------------------------------------------------------- time budget

class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Tick(Callback):
    """Advances the fake clock by 10 s per step."""

    def __init__(self, clock):
        self.clock = clock

    def on_step(self, trainer, step, metrics):
        self.clock.t += 10.0


def test_time_budget_stops_evaluates_and_a_resume_trains_what_is_left(tmp_path):
    cfg = tiny_config(tmp_path, training=dict(steps=STEPS))
    clock = FakeClock()
    # the budget is checked after each step's callbacks in order: Tick first, so 30 s are spent at step 3
    first = tiny_trainer(cfg, callbacks=[Tick(clock), TimeBudget(0.5, clock=clock)]).train()
    assert first.interrupted and first.step == 3 and first.stop_reason.startswith("time budget: 0.50 of 0.5 minutes")
    assert [e["step"] for e in first.eval_history] == [3]  # a budget ends as the last step does: evaluated
    again = tiny_trainer(cfg, resume=True, callbacks=[Tick(clock), TimeBudget(0.5, clock=clock)]).train()
    assert again.interrupted and again.step == 3  # nothing left of the budget: no step
    more = tiny_trainer(cfg, resume=True, callbacks=[Tick(clock), TimeBudget(1.0, clock=clock)]).train()
    assert more.interrupted and more.step == 6


def test_a_budget_of_training_time_leaves_evaluations_out(tmp_path):
    """The benchmark recipe: evaluate every N steps, stop after a budget of training time only."""
    clock = FakeClock()
    budget = TimeBudget(1.0, count_evaluations=False, clock=clock)
    points = []

    class Curve(Callback):
        def on_eval(self, trainer, step, results):
            points.append((step, budget.spent(), results["eval_time_s"]))

    trainer = tiny_trainer(tiny_config(tmp_path, training=dict(steps=STEPS, eval_every=2)),
                           callbacks=[Tick(clock), budget, Curve()])
    trainer.clock = clock  # the loop times evaluations with the same (fake) clock
    evaluate = trainer.evaluate

    def slow_evaluate(*a, **kw):  # each evaluation takes 25 s
        clock.t += 25.0
        return evaluate(*a, **kw)

    trainer.evaluate = slow_evaluate
    result = trainer.train()
    # 10 s per step: the budget of 60 s is spent at step 6, the evaluations' 25 s each left out (counted,
    # the run would stop at step 4: 40 + 25 > 60)
    assert result.interrupted and result.step == 6 and result.stop_reason.startswith("time budget: 1.00 of 1")
    assert points == [(2, 20.0, 25.0), (4, 40.0, 25.0), (6, 60.0, 25.0)]


def test_config_keys_turn_on_the_builtin_callbacks():
    cfg = TRMConfig.from_dict({"training": {"keep_best": "exact_accuracy", "max_time_minutes": 30,
                                            "early_stopping": {"metric": "token_accuracy", "patience": 3}}})
    kinds = [type(c) for c in config_callbacks(cfg)]
    assert kinds == [KeepBest, EarlyStopping, TimeBudget]
    assert config_callbacks(TRMConfig()) == []  # off by default (early_stopping.patience null)
    assert TRMConfig().training.early_stopping == EarlyStoppingConfig()
    with pytest.raises(ConfigError, match="'training.keep_best'.*'loss' is not a held-out metric"):
        TRMConfig.from_dict({"training": {"keep_best": "loss"}})
    with pytest.raises(ConfigError, match="'training.max_time_minutes'"):
        TRMConfig.from_dict({"training": {"max_time_minutes": -1}})


def test_keep_best_without_an_eval_set_is_a_config_error(tmp_path):
    from _train_helpers import TinyTokenizer, reverse_task

    cfg = tiny_config(tmp_path, training=dict(steps=2, keep_best="exact_accuracy"))
    trainer = make(cfg, tokenizer=TinyTokenizer(), datasets_fn=lambda s, d: (reverse_task(s, d)[0], None),
                   async_checkpoints=False)
    with pytest.raises(ConfigError, match="'training.keep_best' acts on held-out evaluations.*no eval set"):
        trainer.train()


def test_evaluate_at_a_halt_threshold_matches_predict(best_run):
    """Trainer.evaluate(halt_threshold=) and training.eval_halt_threshold against predict run by hand."""
    _, trainer, _ = best_run
    model, evl = trainer.stage.model, trainer.stage.eval_set
    params = dist.unreplicate(inference_params(trainer.run.state))
    inputs, labels = evl.rows(np.arange(len(evl)))[:2]
    for threshold in (NO_EARLY_HALT, 1e-6):  # every sample to the depth cap, every sample halting at once
        pred = predict(model, params, inputs, halt_threshold=threshold)
        scored = labels != IGNORE_LABEL
        exact = np.mean([(np.asarray(pred.tokens)[i][scored[i]] == labels[i][scored[i]]).all() for i in range(len(labels))])
        res = trainer.evaluate(halt_threshold=threshold)
        assert res["exact_accuracy"] == pytest.approx(exact)
        assert res["recursion_depth"] == pytest.approx(float(np.mean(pred.recursion_depth)))
    assert trainer.evaluate(halt_threshold=NO_EARLY_HALT)["recursion_depth"] == model.max_recursion_depth > 1
    assert trainer.evaluate(halt_threshold=1e-6)["recursion_depth"] == 1
    config = trainer.config
    trainer.run.config = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                                 eval_halt_threshold=NO_EARLY_HALT))
    try:
        np.testing.assert_equal(trainer.evaluate(), trainer.evaluate(halt_threshold=NO_EARLY_HALT))
    finally:
        trainer.run.config = config


def test_eval_halt_threshold_config_key():
    assert TRMConfig.from_dict({"training": {"eval_halt_threshold": 2}}).training.eval_halt_threshold == 2.0
    with pytest.raises(ConfigError, match="training.eval_halt_threshold"):
        TRMConfig.from_dict({"training": {"eval_halt_threshold": 0}})
