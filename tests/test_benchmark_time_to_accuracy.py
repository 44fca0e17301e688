"""`scripts/benchmark.py time-to-accuracy`: the clock that leaves evaluations out, the time-to-target
comparison, the revealed-givens data, and a --quick run of both trainers. No timing assertions."""

import json
import time

import numpy as np
import pytest
from _scripts import load_script

from benchmarks.time_to_accuracy import TrainClock, compare, reveal, time_to_reach
from trm_jax.huge_pages import huge_pages_enabled, with_huge_pages
from trm_jax.tasks.sudoku import count_solutions_batch, generate_sudoku


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


def test_reveal_adds_solution_cells_up_to_the_givens():
    puzzles, solutions = generate_sudoku(6, seed=1, difficulty=0.0)
    more = reveal(puzzles, solutions, 62, np.random.default_rng(0))
    assert ((more > 0).sum(1) == 62).all()
    assert (more[puzzles > 0] == puzzles[puzzles > 0]).all() and (more[more > 0] == solutions[more > 0]).all()
    assert (count_solutions_batch(more) == 1).all()
    assert (reveal(puzzles, solutions, 40, np.random.default_rng(0)) == puzzles).all()


def test_quick_run_prints_both_curves_and_the_ratio(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tiny_recursive_model")
    script = load_script("benchmark")
    path = tmp_path / "tta.json"
    # a worker that never reaches its budget (the trainer stopped calling evaluate) fails within --timeout
    assert script.main(["--json", str(path), "time-to-accuracy", "--quick", "--timeout", "150"]) == 0
    out = capsys.readouterr().out
    res = json.loads(path.read_text())
    for fw, name in (("jax", "trm_jax"), ("torch", "PyTorch")):
        run = res[fw]
        assert run["framework"] == name and f"{name}: " in out
        assert run["curve"] and run["steps"] >= 1 and run["train_s"] >= res["config"]["budget_s"]
        for p in run["curve"]:
            assert 0 <= p["exact_accuracy"] <= 1 and 0 <= p["token_accuracy"] <= 1 and p["train_s"] > 0
            assert 1 <= p["recursion_depth"] <= res["config"]["max_depth"]
            assert 0 <= p["exact_accuracy_full_depth"] <= 1 and 0 <= p["token_accuracy_full_depth"] <= 1
    # both workers under the same malloc setting: huge pages where this machine has them
    assert res["jax"]["malloc_hugepages"] == res["torch"]["malloc_hugepages"] == huge_pages_enabled(
        with_huge_pages({}))
    assert [c["metric"] for c in res["compare"]] == ["exact_accuracy", "token_accuracy", "exact_accuracy_full_depth"]
    for c in res["compare"]:
        assert "ratio" in c and (c["ratio"] is None) == (c["jax_s"] is None or not c["target"])
        assert c["ratio"] is not None or c["note"]
    assert "exact accuracy: " in out and "token accuracy: " in out and "exact accuracy at full depth: " in out
