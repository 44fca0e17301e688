"""benchmarks.harness: a "module:function" entry run once or as a command server in a fresh process,
pinned to spec["threads"] CPUs, its lines streamed, failures and time-outs reported with the worker's
output and its last result; the timing helpers; a run config cut to one stage."""

import os
import time

import pytest

from benchmarks.harness import (CONFIGS, FAR, WorkerError, WorkerServer, best_time, one_stage_config, resolve,
                                run_worker, timed)

ENTRY = '''
import os
import time

def once(spec):
    return {"doubled": 2 * spec["x"], "cpus": len(os.sched_getaffinity(0))}

def counter(spec):
    state = {"n": spec["start"]}

    def bump():
        state["n"] += 1
        return {"n": state["n"]}
    return {"bump": bump, "fail": lambda: 1 / 0}

def broken(spec):
    raise ValueError("entry failed on purpose")

def partial_then_hang(spec):
    from benchmarks.harness import answer
    print("[part] measured", flush=True)
    answer({"part": "train"})
    time.sleep(60)
    return {"part": "all"}
'''


@pytest.fixture()
def env(tmp_path):
    (tmp_path / "bench_entry_for_tests.py").write_text(ENTRY)
    return dict(os.environ, PYTHONPATH=str(tmp_path))


def test_run_worker_returns_the_entry_result_in_a_pinned_process(env):
    res = run_worker("bench_entry_for_tests:once", {"x": 21, "threads": 1}, env, timeout=120)
    assert res == {"doubled": 42, "cpus": 1}


def test_run_worker_failure_carries_the_worker_error(env):
    with pytest.raises(RuntimeError, match="entry failed on purpose"):
        run_worker("bench_entry_for_tests:broken", {}, env, timeout=120)


def test_server_keeps_state_between_commands_and_names_unknown_ones(env):
    server = WorkerServer("bench_entry_for_tests:counter", {"start": 10}, env, timeout=120, name="counter")
    try:
        assert [server("bump")["n"] for _ in range(3)] == [11, 12, 13]
        with pytest.raises(RuntimeError, match="unknown command 'nope'"):
            server("nope")
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            server("fail")  # the exception ends the worker; its traceback is in the error
    finally:
        server.close()


def test_resolve_needs_module_and_function():
    assert resolve("os.path:join") is os.path.join
    for bad in ("os.path", ":join", "os.path:"):
        with pytest.raises(ValueError, match="module:function"):
            resolve(bad)


def test_run_worker_streams_lines_and_a_killed_worker_keeps_its_last_result(env):
    lines = []
    with pytest.raises(WorkerError) as failed:
        run_worker("bench_entry_for_tests:partial_then_hang", {}, env, timeout=5, on_line=lines.append)
    assert failed.value.reason == "killed after 5 s" and failed.value.partial == {"part": "train"}
    assert lines == ["[part] measured\n"] and "[part] measured" in failed.value.output


def test_timed_and_best_time():
    calls = []
    wall, cpu = timed(lambda: time.sleep(0.02))
    assert wall >= 0.02 and cpu < wall
    assert best_time(lambda: calls.append(time.sleep(0.01)), 3) >= 0.01 and len(calls) == 4  # one untimed first
    best_time(lambda: calls.append(None), 2, warmup=False)
    assert len(calls) == 6


def test_one_stage_config_keeps_the_first_stages_shapes_and_nothing_inside():
    cfg = one_stage_config(os.path.join(CONFIGS, "sudoku_cpu.yaml"), 7, ["training.log_every=2"])
    (stage,) = cfg.curriculum.stages
    assert stage.steps == 7 and stage.difficulty == 0.303 and cfg.training.log_every == 2
    assert cfg.training.eval_every == cfg.training.checkpoint_every == FAR and not cfg.training.progress_bar


def test_one_stage_config_of_a_later_stage_takes_what_it_and_the_stages_before_it_set():
    cfg = one_stage_config(os.path.join(CONFIGS, "sudoku_fast.yaml"), 5, stage=2)
    (stage,) = cfg.curriculum.stages
    # stage 2 sets T and the difficulty (25 givens, overriding the 40 and 30 of the stages before); n and the
    # learning rate are the model's and training's
    assert (stage.steps, stage.num_refinement_blocks, stage.difficulty) == (5, 8, 0.758)
    assert stage.num_latent_refinements == cfg.model.num_latent_refinements == 2
    assert stage.learning_rate == cfg.training.learning_rate == 2e-3
