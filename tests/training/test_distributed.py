"""1 vs 2 emulated CPU devices, two processes on localhost (jax.distributed), batch divisibility.

The 2-device and multi-host runs are subprocesses: XLA_FLAGS must be set before JAX starts.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from _train_helpers import tiny_config, tiny_trainer, train_losses
from _paths import TESTS

WORKER = os.path.join(TESTS, "_train_worker.py")
STEPS = 8  # with dropout and exploration: the settings of test_training_resume, so its compiled step is reused
OVERRIDES = [f"training.steps={STEPS}", "training.halt_exploration_prob=0.5", "model.dropout=0.1"]


def run_worker(out, run_dir, overrides, devices=1, extra_env=None, wait=True):
    env = dict(os.environ)
    # conftest's fast-compile flags (compiling dominates these tiny runs) plus the device count
    env["XLA_FLAGS"] = f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, WORKER, str(out), str(run_dir), *overrides], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    return json.load(open(out))


@pytest.fixture(scope="module")
def one_device(once, tmp_path_factory):
    """The reference: a pytest process (one CPU device); computed once in the session (under xdist the
    module's tests land on both workers), params back as arrays."""
    def produce():
        assert jax.device_count() == 1
        run = tmp_path_factory.mktemp("d1") / "run"
        cfg = tiny_config(run, training=dict(steps=STEPS, halt_exploration_prob=0.5), model=dict(dropout=0.1))
        result = tiny_trainer(cfg).train()
        return dict(losses=[float(x) for x in train_losses(run)],
                    eval={k: np.asarray(v).tolist() for k, v in result.eval.items()},
                    params=[np.asarray(x).ravel()[:64].tolist() for x in jax.tree.leaves(result.params)])

    ref = once("distributed_one_device", produce)
    return dict(ref, params=[np.asarray(x, np.float32) for x in ref["params"]])


def _compare(ref, other):
    assert len(other["losses"]) == len(ref["losses"]) == STEPS
    rel = np.max(np.abs(np.subtract(other["losses"], ref["losses"])) / np.abs(ref["losses"]))
    print(f"max relative loss difference over {STEPS} steps: {rel:.2e}")
    np.testing.assert_allclose(other["losses"], ref["losses"], rtol=2e-5)
    for a, b in zip(other["params"], ref["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert other["eval"]["exact_accuracy"] == ref["eval"]["exact_accuracy"]


def test_two_devices_match_one(one_device, tmp_path):
    out = run_worker(tmp_path / "out.json", tmp_path / "run", OVERRIDES, devices=2)
    assert out["devices"] == 2
    _compare(one_device, out)


def test_batch_not_divisible_by_two_devices(tmp_path):
    out = run_worker(tmp_path / "out.json", tmp_path / "run", ["training.batch_size=7"], devices=2)
    assert "training.batch_size" in out["error"] and "not divisible by the 2 devices" in out["error"]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_match_one_device(one_device, tmp_path):
    port = _free_port()
    procs = []
    for pid in range(2):
        dist = [f"distributed.enabled=true", f"distributed.coordinator_address=localhost:{port}",
                "distributed.num_processes=2", f"distributed.process_id={pid}",
                "distributed.initialization_timeout_s=120"]
        procs.append(run_worker(tmp_path / f"out{pid}.json", tmp_path / "run", OVERRIDES + dist, wait=False))
    logs = []
    for p in procs:
        log, _ = p.communicate(timeout=300)
        logs.append(log)
        assert p.returncode == 0, log[-3000:]
    out = json.load(open(tmp_path / "out0.json"))
    assert out["devices"] == 2 and out["processes"] == 2
    _compare(one_device, out)
    assert os.path.exists(tmp_path / "run" / "train.1.log")  # each host logs to its own file
    steps = sorted(int(d) for d in os.listdir(tmp_path / "run" / "checkpoints") if d.isdigit())
    assert steps == [STEPS]
