"""`scripts/benchmark.py time-to-accuracy`: the clock that leaves evaluations out, the time-to-target
comparison, the revealed-givens data, its options, and one --quick run of both trainers. No timing
assertions."""

import argparse
import dataclasses
import json
import time

import numpy as np
import pytest
from _benchmark_runs import printed
from _scripts import load_script

from benchmarks.harness import config_from_args
from benchmarks.time_to_accuracy import (DEFAULT, QUICK, TrainClock, add_time_to_accuracy_arguments, compare,
                                         fast_stages, recipe_options, reveal, sudoku_arrays, time_to_reach,
                                         train_jax)
from scripts.launcher import huge_pages_enabled, with_huge_pages
from trm_jax.tasks.sudoku import count_solutions_batch, generate_sudoku
from trm_jax.training import Callback


def test_clock_leaves_evaluation_pauses_out_and_stops_at_the_budget():
    def evaluate():
        time.sleep(0.05)
        return dict(exact_accuracy=0.0, token_accuracy=0.5, recursion_depth=1.0)

    t0 = time.perf_counter()
    clock = TrainClock(budget_s=0.2, eval_every_s=0.05, evaluate=evaluate)
    step = 0
    while True:
        step += 1
        time.sleep(0.005)
        if clock.tick(step):
            break
    total = time.perf_counter() - t0
    times = [p["train_s"] for p in clock.curve]
    assert len(times) >= 2 and times == sorted(times) and times[-1] >= 0.2
    assert clock.curve[-1]["step"] == step
    assert clock.eval_wall >= 0.05 * len(times)  # every evaluation's sleep is outside the clock
    assert clock.wall <= total - clock.eval_wall + 1e-3
    assert clock.wall == times[-1]


def _run(points):
    return {"curve": [dict(train_s=t, exact_accuracy=e, token_accuracy=a) for t, e, a in points]}


def test_time_to_reach_and_ratio_against_pytorchs_final_accuracy():
    torch_run = _run([(10, 0.1, 0.5), (20, 0.3, 0.7), (30, 0.2, 0.75)])
    jax_run = _run([(5, 0.05, 0.6), (10, 0.25, 0.8)])
    assert time_to_reach(torch_run["curve"], 0.2) == 20
    c = compare(jax_run, torch_run, "exact_accuracy")  # target 0.2: PyTorch first at 20 s, trm_jax at 10 s
    assert (c["target"], c["torch_s"], c["jax_s"], c["ratio"]) == (0.2, 20, 10, 0.5) and "met" in c["note"]
    c = compare(_run([(5, 0.0, 0.1)]), torch_run, "token_accuracy")
    assert c["ratio"] is None and c["jax_s"] is None and "did not reach" in c["note"]
    c = compare(jax_run, _run([(30, 0.0, 0.4)]), "exact_accuracy")
    assert c["ratio"] is None and "no target" in c["note"]
    c = compare(jax_run, torch_run, "exact_accuracy", goal=0.25)  # --recipe fast's goal: 0.5 misses it
    assert c["ratio"] == 0.5 and c["note"] == "goal (<= 0.25) not met"


def test_fast_recipe_trains_final_step_with_growing_cycles_and_evaluates_settled():
    assert recipe_options("same") == ({}, {})
    assert recipe_options("fast", 0.5) == (dict(halting="settled"), dict(supervision="final", transition_grad_prob=0.5))
    with pytest.raises(ValueError, match="recipe must be"):
        recipe_options("slow")
    assert fast_stages((2, 3), (5,)) == [dict(steps=5, num_refinement_blocks=2),
                                         dict(steps=2 ** 30, num_refinement_blocks=3)]
    for cycles, steps in (((2, 3), ()), ((1, 3), (5,)), ((2, 3), (0,))):
        with pytest.raises(SystemExit, match="--fast-cycles"):
            fast_stages(cycles, steps)

    seen = []

    class Spy(Callback):
        def on_step(self, trainer, step, metrics):
            seen.append((step, trainer.stage.model.num_refinement_blocks, trainer.config.training.supervision,
                         trainer.stage.model.halting))
            if step == 3:  # the budget (long enough for the compilations) would run on: stop with its final point
                trainer.request_stop("enough", final_eval=True)

    cfg = dataclasses.replace(QUICK, dim=16, budget_s=600.0, eval_every_s=600.0, max_recursion_depth=3, num_train=64,
                              num_eval=16)
    res = train_jax(cfg, sudoku_arrays(cfg), callbacks=[Spy()], recipe="fast", fast_cycles=(2, 3),
                    fast_stage_steps=(2,))
    assert seen == [(1, 2, "final", "settled"), (2, 2, "final", "settled"), (3, 3, "final", "settled")]
    assert len(res["curve"]) == 1 and res["steps"] == 3
    # settled: 3 steps at the earliest (settle_steps 2), the cap; the untrained head would stop at 1
    for p in res["curve"]:
        assert p["recursion_depth"] == 3 and 0 <= p["exact_accuracy_full_depth"] <= 1


def test_reveal_adds_solution_cells_up_to_the_givens():
    puzzles, solutions = generate_sudoku(6, seed=1, difficulty=0.0)
    more = reveal(puzzles, solutions, 62, np.random.default_rng(0))
    assert ((more > 0).sum(1) == 62).all()
    assert (more[puzzles > 0] == puzzles[puzzles > 0]).all() and (more[more > 0] == solutions[more > 0]).all()
    assert (count_solutions_batch(more) == 1).all()
    assert (reveal(puzzles, solutions, 40, np.random.default_rng(0)) == puzzles).all()


def test_options_are_the_config_fields_and_quick_takes_them_too():
    p = argparse.ArgumentParser()
    add_time_to_accuracy_arguments(p)
    assert config_from_args(p.parse_args([]), DEFAULT, QUICK) == DEFAULT
    args = p.parse_args(["--max-recursion-depth", "6", "--learning-rate", "0.01", "--num-latent-refinements", "3",
                         "--halted-samples", "drop"])
    assert config_from_args(args, DEFAULT, QUICK) == dataclasses.replace(
        DEFAULT, max_recursion_depth=6, learning_rate=0.01, num_latent_refinements=3, halted_samples="drop")
    quick = config_from_args(p.parse_args(["--quick", "--seed", "3"]), DEFAULT, QUICK)
    assert quick == dataclasses.replace(QUICK, seed=3)
    for old in (["--max-depth", "6"], ["--lr", "0.01"], ["--n", "2"], ["--T", "2"]):  # the package's names only
        with pytest.raises(SystemExit):
            p.parse_args(old)


SHRINK = ["--budget-s", "1.5", "--eval-every-s", "0.5", "--dim", "16", "--max-recursion-depth", "2",
          "--num-train", "64"]


@pytest.fixture()
def quick_run(once, tmp_path_factory):
    """`scripts/benchmark.py time-to-accuracy --quick`: {"out": printed, "json": --json's}."""
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")

    def run():
        path = tmp_path_factory.mktemp("tta") / "tta.json"
        # a worker that never reaches its budget (the trainer stopped calling evaluate) fails within --timeout
        # --quick shrunk further by its options (the test checks the curves' form, not their accuracy)
        res = printed(load_script("benchmark").main, ["--json", str(path), "time-to-accuracy", "--quick",
                                                      "--timeout", "150", *SHRINK])
        return dict(res, json=json.loads(path.read_text()))
    return once("time_to_accuracy", run)


def test_quick_run_gives_both_curves(quick_run):
    out, res = quick_run["out"], quick_run["json"]
    assert quick_run["result"] == 0
    for fw, name in (("jax", "trm_jax"), ("torch", "PyTorch")):
        run = res[fw]
        assert run["framework"] == name and f"{name}: " in out
        assert run["curve"] and run["steps"] >= 1 and run["train_s"] >= res["config"]["budget_s"]
        for p in run["curve"]:
            assert 0 <= p["exact_accuracy"] <= 1 and 0 <= p["token_accuracy"] <= 1 and p["train_s"] > 0
            assert 1 <= p["recursion_depth"] <= res["config"]["max_recursion_depth"]
            assert 0 <= p["exact_accuracy_full_depth"] <= 1 and 0 <= p["token_accuracy_full_depth"] <= 1
    # both workers under the same malloc setting: huge pages where this machine has them
    assert res["jax"]["malloc_hugepages"] == res["torch"]["malloc_hugepages"] == huge_pages_enabled(
        with_huge_pages({}))


def test_quick_run_compares_the_times_to_pytorchs_final_accuracy(quick_run):
    out, res = quick_run["out"], quick_run["json"]
    assert [c["metric"] for c in res["compare"]] == ["exact_accuracy", "token_accuracy", "exact_accuracy_full_depth"]
    for c in res["compare"]:
        assert "ratio" in c and (c["ratio"] is None) == (c["jax_s"] is None or not c["target"])
        assert c["ratio"] is not None or c["note"]
    assert "exact accuracy: " in out and "token accuracy: " in out and "exact accuracy at full depth: " in out
