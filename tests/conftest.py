"""Shared fixtures: a tiny trained run directory (trained once per test process).

Tests compile many small XLA programs; backend optimisation level 0 halves compile time on CPU and
changes no result beyond float tolerance. Subprocesses started by tests inherit it.
"""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
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
