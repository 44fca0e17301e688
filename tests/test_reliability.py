"""Reliability: bad input gets one clear error, nothing on a load path unpickles, memory stays flat.

Training faults (SIGKILL/SIGTERM, corrupted checkpoints, unwritable run dirs, NaN steps) are in
tests/test_reliability_training.py.
"""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trm_jax.config import TRMConfig
from trm_jax.errors import ConfigError, TRMError
from trm_jax.inference import infer, load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------ 5. security

def _python_files():
    for top in ("trm_jax", "scripts"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(root, f)


def test_no_pickle_on_any_load_path():
    offenders = []
    for path in _python_files():
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill", "joblib") for n in names):
                    offenders.append(f"{path}:{node.lineno} imports pickle")
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path}:{node.lineno} allow_pickle not False")
            if isinstance(node, ast.keyword) and node.arg == "weights_only":
                if not (isinstance(node.value, ast.Constant) and node.value.value is True):
                    offenders.append(f"{path}:{node.lineno} torch.load without weights_only=True")
    assert not offenders, offenders


def test_malicious_npz_is_refused(tmp_path):
    from trm_jax.rag import MemoryVectorStore

    d = tmp_path / "store"
    store = MemoryVectorStore(dim=4)
    store.add(np.eye(4, dtype=np.float32)[:2], ["a", "b"])
    store.save(d)
    np.savez(d / "store.npz", vectors=np.array([{"__reduce__": "os.system"}] * 4, dtype=object))
    with pytest.raises(TRMError):
        MemoryVectorStore.load(d)


def test_malicious_sudoku_cache_is_refused(tmp_path):
    from trm_jax.tasks.sudoku import load_or_generate_sudoku

    first = load_or_generate_sudoku(4, 0, 0.0, cache_dir=str(tmp_path), progress=False)
    (cache,) = tmp_path.rglob("*.npz")
    np.savez(cache, puzzles=np.array([None] * 4, dtype=object), solutions=np.array([None] * 4, dtype=object))
    out = load_or_generate_sudoku(4, 0, 0.0, cache_dir=str(tmp_path), progress=False)
    # the object arrays were refused (never unpickled) and the same puzzles regenerated from the seed
    assert all(a.dtype != object for a in out)
    np.testing.assert_array_equal(out[0], first[0])


def test_config_yaml_cannot_construct_objects(tmp_path):
    from trm_jax.config import load_config

    p = tmp_path / "c.yaml"
    p.write_text("seed: !!python/object/apply:os.getpid []\n")
    with pytest.raises(ConfigError):
        load_config(str(p))


# ---------------------------------------------------------------------------------------- 1. config

@pytest.mark.parametrize("raw, match", [
    ({"model": {"depth": 0}}, "model.depth"),
    ({"model": {"num_latent_refinements": -1}}, "model.num_latent_refinements"),
    ({"model": {"max_recursion_depth": 0}}, "model.max_recursion_depth"),
    ({"model": {"dropout": 1.0}}, "model.dropout"),
    ({"model": {"halt_loss_weight": -1}}, "model.halt_loss_weight"),
    ({"model": {"dtype": "float16"}}, "model.dtype"),
    ({"data": {"seq_len": 0}}, "data.seq_len"),
    ({"data": {"difficulty": 2}}, "data.difficulty"),
    ({"data": {"truncation": "cut"}}, "data.truncation"),
    ({"training": {"batch_size": 0}}, "training.batch_size"),
    ({"training": {"steps": "many"}}, "training.steps"),
    ({"training": {"optimiser": "adamw"}}, "Did you mean 'training.optimizer'"),
    ({"rag": {"top_k": 0}}, "rag.top_k"),
    ({"rag": {"corpus_path": "/nonexistent/corpus"}}, "rag.corpus_path"),
    ({"monitoring": {"ram_percent_warn": 150}}, "monitoring.ram_percent_warn"),
    ({"distributed": {"enabled": True, "coordinator_address": "localhost:1234"}}, "distributed.num_processes"),
])
def test_more_bad_config_values(raw, match):
    with pytest.raises(ConfigError, match=match):
        TRMConfig.from_dict(raw)


def test_sudoku_seq_len_too_small_is_a_clear_error(tmp_path):
    from trm_jax.data.tokenizers import load_tokenizer
    from trm_jax.tasks import get_task

    cfg = TRMConfig.from_dict({"data": {"task": "sudoku", "seq_len": 64, "num_train": 4, "num_eval": 2,
                                        "cache_dir": str(tmp_path)}})
    tok, _, _ = load_tokenizer("grid")
    with pytest.raises(TRMError, match="seq_len"):
        get_task(cfg).datasets(tok)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    code = ("import os; os.environ['XLA_FLAGS']='--xla_force_host_platform_device_count=2';"
            "from trm_jax.training import create_trainer;"
            "create_trainer({'run_dir': os.environ['RUN'], 'training': {'batch_size': 3}, 'monitoring': "
            "{'enabled': False}, 'data': {'num_train': 16, 'num_eval': 4, 'code_num_facts': 16}})")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "RUN": d})
    assert out.returncode != 0
    assert "batch_size" in out.stderr and "divisible" in out.stderr


def test_train_script_reports_config_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  dimm: 3\n")
    out = subprocess.run([sys.executable, "scripts/train.py", "--config", str(bad)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "model.dimm" in out.stderr and "Did you mean" in out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------------------------ 4. inference input

def test_inference_inputs(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    p = load(run_dir)
    with pytest.raises(TRMError, match="empty"):
        infer(p, "")
    assert isinstance(infer(p, "ü→€ 漢字"), str)  # outside the char alphabet: encoded as unknown, warned
    long_text = "f(1)" * 100
    assert isinstance(infer(p, long_text), str)  # truncation: truncate (documented)
    strict = p.config.replace(data=p.config.data.__class__(**{**p.config.data.__dict__, "truncation": "error"}))
    with pytest.raises(TRMError, match="seq_len"):
        infer(p.params, long_text, config=strict, tokenizer=p.tokenizer)
    with pytest.raises(TRMError, match="not a trm_jax run directory"):
        load(tmp_path / "nowhere")
    os.makedirs(tmp_path / "fake" / "checkpoints")
    (tmp_path / "fake" / "config.yaml").write_text("model: {dim: 16}\n")
    with pytest.raises(TRMError, match="no checkpoint"):
        load(tmp_path / "fake")


def test_checkpoint_from_another_config_is_a_clear_error(tiny_run, tmp_path):
    import shutil

    run_dir, _ = tiny_run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    text = (other / "config.yaml").read_text().replace("dim: 16", "dim: 24")
    (other / "config.yaml").write_text(text)
    with pytest.raises(TRMError, match="another config|does not fit"):
        load(other)


# ------------------------------------------------------------------------------------------- 6. load

def test_repeated_infer_keeps_memory_flat(tiny_run, tmp_path):
    out = subprocess.run([sys.executable, "scripts/soak_infer.py", "--run", tiny_run[0], "--calls", "300",
                          "--json", str(tmp_path / "soak.json")], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.loads((tmp_path / "soak.json").read_text())
    assert res["new_compilations"] == 0
    # after warm-up, 300 calls must not grow RSS by more than a few MiB (a leak per call would show)
    assert res["growth_mb"] < 32, res["rss_mb"]
