"""scripts/train.py end to end on the code task: output, run directory, --resume, --set errors, load()."""

import os
import pathlib
import subprocess
import sys
import types

import pytest

from trm_jax.training import read_metrics
from _paths import REPO

ROOT = REPO
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
TINY = os.path.join(ROOT, "configs", "tiny.yaml")


def train(tmp_path, *args, cache=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")  # with conftest's fast-compile XLA_FLAGS
    if cache:  # the second process reuses the first one's XLA compilations
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, SCRIPT, "--config", TINY, "--quiet", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def _runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("script")
    common = ["--run-dir", str(tmp / "run"), "--set", "data.num_train=64", "--set", "data.num_eval=16",
              "--set", "training.checkpoint_every=3", "--set", "training.eval_every=1000",
              # retrieval instead of the oracle context: the run dir must keep the RAG store
              "--set", "data.code_context=none", "--set", "rag.enabled=true", "--set", "rag.embedder=hashing"]
    first = train(tmp, *common, "--set", "training.steps=4", cache=tmp / "xla")
    second = train(tmp, *common, "--set", "training.steps=6", "--resume", cache=tmp / "xla")
    done = [dict(returncode=p.returncode, stdout=p.stdout, stderr=p.stderr) for p in (first, second)]
    return dict(run=str(tmp / "run"), first=done[0], second=done[1])


@pytest.fixture(scope="module")
def run(once, tmp_path_factory):
    """(run dir, first process, --resume process): trained once in the session (under xdist the module's
    tests land on both workers), the processes' returncode, stdout and stderr kept as JSON."""
    out = once("train_script_run", lambda: _runs(tmp_path_factory))
    return pathlib.Path(out["run"]), types.SimpleNamespace(**out["first"]), types.SimpleNamespace(**out["second"])


def test_script_trains_prints_accuracy_and_writes_run_dir(run):
    run_dir, first, _ = run
    assert first.returncode == 0, first.stderr[-3000:]
    assert "held-out exact accuracy:" in first.stdout and "step 4" in first.stdout
    assert {"config.yaml", "tokenizer", "checkpoints", "metrics.jsonl", "train.log", "rag"} <= set(os.listdir(run_dir))
    assert "num_tokens: 100" in (run_dir / "config.yaml").read_text()  # resolved from the char tokenizer


def test_script_resume_extends_run(run):
    run_dir, _, second = run
    assert second.returncode == 0, second.stderr[-3000:]
    assert "step 6" in second.stdout
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [4, 6]  # log_every 10: stage ends
    assert "resumed from checkpoint step 4" in (run_dir / "train.log").read_text()


def test_trained_run_loads_for_inference(run):
    import trm_jax
    params = trm_jax.load(run[0])
    assert params.step == 6 and params.retriever is not None  # the saved RAG store came back
    out = trm_jax.infer(params, "def kav(x): return x+3\n>>> kav(4)")
    assert isinstance(out, str)


def test_bad_override_is_a_clear_error(tmp_path):
    res = train(tmp_path, "--set", "training.stepz=3")
    assert res.returncode == 2 and "training.stepz" in res.stderr and "training.steps" in res.stderr
    assert "Traceback" not in res.stderr
