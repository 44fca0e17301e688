"""benchmarks.workers: the generic runner runs a "module:function" entry once or as a command server
in a fresh process, pinned to spec["threads"] CPUs, and reports failures with the worker's output."""

import os

import pytest

from benchmarks.workers import WorkerServer, resolve, run_worker

ENTRY = '''
import os

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
