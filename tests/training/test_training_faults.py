"""Reliability, training faults (issue 8 item 2 and 3): nothing lost, every error clear.

- SIGKILL at a seeded random step, and SIGKILL while an async checkpoint is being written, then
  resume: same losses and final params as an uninterrupted run (subprocesses: tests/_fault_worker.py);
- a damaged latest checkpoint (truncated array data, garbled meta JSON, arrays of another step) is
  reported, set aside, and the previous good step is used, by resume and by `trm_jax.load`;
- an unwritable run dir / full disk: a TRMError naming the path and the fix, earlier checkpoints intact;
- NaN/Inf from a bad batch: the update is skipped (params, EMA and optimizer state unchanged), counted,
  logged, reset by a good step, and K consecutive ones stop the run with a clear error;
- nothing a config names can make the trainer write outside run_dir.

SIGTERM (checkpoint written before a clean stop, then resume) is tests/test_training_resume.py.
All in-process runs share one compiled step with test_training_resume (same model/step settings).
"""

import errno
import glob
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
from _train_helpers import VOCAB, result_as_json, result_from_json, tiny_config, tiny_trainer, train_losses

from trm_jax.errors import TRMError
from trm_jax.inference import load
from trm_jax.training import read_metrics
from _paths import TESTS

WORKER = os.path.join(TESTS, "_fault_worker.py")
SEED = int(os.environ.get("TRM_FAULT_SEED", "0"))  # the kill moment is random but reproducible
STEPS = 8
# dropout and halt exploration on (tiny_config): a resume must also continue the random streams
SECTIONS = dict(model=dict(dropout=0.1), training=dict(steps=STEPS, checkpoint_every=2, keep_checkpoints=3))
OVERRIDES = [f"training.steps={STEPS}", "model.dropout=0.1", "training.checkpoint_every=2",
             "training.keep_checkpoints=3"]


def cfg(run_dir, **training):
    sections = dict(SECTIONS, training=dict(SECTIONS["training"], **training))
    return tiny_config(run_dir, **sections)


def committed(run_dir) -> list[int]:
    return sorted(int(d) for d in os.listdir(os.path.join(run_dir, "checkpoints")) if d.isdigit())


def leftovers(run_dir) -> list[str]:
    return sorted(d for d in os.listdir(os.path.join(run_dir, "checkpoints")) if "orbax-checkpoint-tmp" in d)


def assert_same_run(result, run_dir, ref, exact=False):
    """Same per-step losses (each step logged once) and final raw and EMA params as the reference."""
    recs = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["step"] for r in recs] == list(range(1, STEPS + 1))
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(train_losses(run_dir), ref["losses"], **tol)
    assert result.step == STEPS
    for got, want in ((result.params, ref["result"].params), (result.raw_params, ref["result"].raw_params)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol), got, want)


def _start_worker(run_dir, mode):
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen([sys.executable, WORKER, str(run_dir), mode, *OVERRIDES], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


RESULT_FIELDS = ("step", "params", "raw_params")  # what the tests compare of a TrainResult


@pytest.fixture(scope="module")
def runs(once, tmp_path_factory):
    """The uninterrupted reference and two SIGKILLed worker runs, resumed; computed once in the session
    (under xdist the module's tests land on both workers), results as JSON with params as arrays again."""
    out = once("training_faults", lambda: _runs(tmp_path_factory))
    for name in ("ref", "kill", "save"):
        out[name]["result"] = result_from_json(out[name]["result"])
    return out


def _runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("faults")
    rng = random.Random(SEED)
    target, delay = rng.randint(3, STEPS - 1), rng.uniform(0.0, 0.15)
    save_step = rng.choice([4, 6])

    # worker A is killed from outside at a seeded step (+ a seeded fraction of a step) once a checkpoint
    # is committed; worker B kills itself while its async write of checkpoint `save_step` is in flight
    kill_dir, save_dir = base / "kill", base / "save"
    a, b = _start_worker(kill_dir, "throttle"), _start_worker(save_dir, f"kill-in-save:{save_step}")
    seen = dict(log=[], killed_after=None)

    def watch():
        for line in a.stdout:
            seen["log"].append(line)
            if line.startswith("step ") and seen["killed_after"] is None:
                step = int(line.split()[1])
                if step >= target and os.path.isdir(kill_dir / "checkpoints" / "2"):
                    threading.Event().wait(delay)
                    a.send_signal(signal.SIGKILL)
                    seen["killed_after"] = step

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    ref_dir = base / "ref"
    ref = tiny_trainer(cfg(ref_dir)).train()
    out = dict(base=str(base), target=target, save_step=save_step,
               ref=dict(result=result_as_json(ref, *RESULT_FIELDS), losses=train_losses(ref_dir), dir=str(ref_dir)))

    a.wait(timeout=600)
    watcher.join(timeout=60)
    log_b = b.communicate(timeout=600)[0]
    out["kill"] = dict(rc=a.returncode, log="".join(seen["log"]), killed_after=seen["killed_after"])
    out["save"] = dict(rc=b.returncode, log=log_b)
    for name, run_dir in (("kill", kill_dir), ("save", save_dir)):
        # the state a crash left, then the restart with --resume
        out[name].update(dir=str(run_dir), committed=committed(run_dir), tmp=leftovers(run_dir))
        out[name]["result"] = result_as_json(tiny_trainer(cfg(run_dir), resume=True).train(), *RESULT_FIELDS)
        out[name]["train_log"] = (run_dir / "train.log").read_text()
    return out


def test_sigkill_at_random_step_then_resume_matches_uninterrupted_run(runs):
    k = runs["kill"]
    assert k["rc"] == -signal.SIGKILL, k["log"][-3000:]
    assert "finished" not in k["log"] and k["killed_after"] >= runs["target"]
    assert k["committed"] and max(k["committed"]) <= k["killed_after"] + 1
    last = max(k["committed"])
    assert f"resumed from checkpoint step {last}" in k["train_log"]
    assert_same_run(k["result"], k["dir"], runs["ref"])
    assert not leftovers(k["dir"])
    print(f"SIGKILL after step {k['killed_after']} (seed {SEED}); resumed from step {last}")


def test_sigkill_during_async_checkpoint_write_then_resume(runs):
    s, at = runs["save"], runs["save_step"]
    assert s["rc"] == -signal.SIGKILL, s["log"][-3000:]
    # the write of `at` never committed: only its temporary directory was left, and resume ignores it
    assert s["tmp"] and all(t.startswith(f"{at}.") for t in s["tmp"]), s["tmp"]
    assert at not in s["committed"] and max(s["committed"]) == at - 2
    assert f"resumed from checkpoint step {at - 2}" in s["train_log"]
    assert_same_run(s["result"], s["dir"], runs["ref"])
    assert not leftovers(s["dir"]) and committed(s["dir"]) == [4, 6, 8]


def test_run_dir_holds_only_the_run_files(runs):
    ref_dir = runs["ref"]["dir"]
    assert sorted(os.listdir(ref_dir)) == ["checkpoints", "config.yaml", "metrics.jsonl", "train.log"]
    assert committed(ref_dir) == [4, 6, 8]  # keep_checkpoints=3


# ------------------------------------------------------------------------------- damaged checkpoints

def _truncate_array_data(step_dir):
    # a copy cut off midway: every OCDBT data file loses its second half (some hold unused b-tree nodes
    # only, so damaging a single file may legitimately go unnoticed)
    for path in glob.glob(str(step_dir / "state" / "**" / "d" / "*"), recursive=True):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def _garble_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"format": 1, "step": 8, "sta')


def _arrays_of_another_step(step_dir):
    # readable, well-formed, wrong content (e.g. a half-finished copy): only the checksums catch it
    shutil.rmtree(step_dir / "state")
    shutil.copytree(step_dir.parent / "6" / "state", step_dir / "state")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax's aborted async reads
@pytest.mark.parametrize("damage", [_truncate_array_data, _garble_meta, _arrays_of_another_step],
                         ids=["truncated-array-data", "garbled-meta-json", "arrays-of-another-step"])
def test_damaged_latest_checkpoint_falls_back_to_previous(runs, tmp_path, caplog, damage):
    run = tmp_path / "run"
    shutil.copytree(runs["ref"]["dir"], run)
    damage(run / "checkpoints" / "8")

    with caplog.at_level(logging.WARNING, logger="trm_jax"):
        params = load(run)
    if params.step == 8:  # the damage did not touch the weights `load` reads: they are intact
        jax.tree.map(np.testing.assert_array_equal, params.params, runs["ref"]["result"].params)
    else:
        assert params.step == 6, params
        assert "checkpoints/8 is damaged" in caplog.text or "checkpoints/8 cannot be restored" in caplog.text
        assert "loaded checkpoint step 6 instead of the damaged step 8" in caplog.text
        jax.tree.map(np.testing.assert_array_equal, params.params, load(runs["ref"]["dir"], step=6).params)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trm_jax"):
        result = tiny_trainer(cfg(run), resume=True).train()
    assert f"{run}/checkpoints/8 is damaged" in caplog.text
    assert "resuming from checkpoint step 6 instead of the damaged step(s) 8" in caplog.text
    assert os.path.isdir(run / "checkpoints" / "8.damaged")  # kept for inspection, not deleted
    assert_same_run(result, run, runs["ref"], exact=True)  # steps 7-8 retrained: nothing lost
    assert committed(run) == [4, 6, 8] and load(run).step == 8


def test_no_intact_checkpoint_is_a_clear_error(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["ref"]["dir"], run)
    for step in committed(run):
        (run / "checkpoints" / str(step) / "meta" / "metadata").write_text("garbage")
    with pytest.raises(TRMError, match=r"no checkpoint in .*checkpoints could be restored \(step 8: .*step 4: .*"
                                       r"start a new run_dir"):
        tiny_trainer(cfg(run), resume=True).train()


# ------------------------------------------------------------------------ unwritable run dir, disk full

def test_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("not a directory")
    with pytest.raises(TRMError, match=f"cannot write to the run directory {blocker}.*writable"):
        tiny_trainer(cfg(blocker))
    assert blocker.read_text() == "not a directory"


def test_checkpoints_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").write_text("x")
    with pytest.raises(TRMError, match=f"cannot write checkpoints to {tmp_path}/checkpoints.*not a file"):
        tiny_trainer(cfg(tmp_path))


def test_disk_full_during_checkpoint_write(runs, tmp_path):
    """ENOSPC injected into the checkpoint write of step 6: a TRMError naming the directory, the fix and
    the last complete step; checkpoints 2 and 4 stay loadable and a resume finishes the run."""
    run = tmp_path / "run"
    trainer = tiny_trainer(cfg(run))
    save = trainer.run.checkpointer.manager.save

    def full_disk(step, *a, **kw):
        if step >= 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / "checkpoints" / f"{step}"))
        return save(step, *a, **kw)

    trainer.run.checkpointer.manager.save = full_disk
    with pytest.raises(TRMError, match=rf"could not write checkpoint step 6 to {run}/checkpoints .*No space left "
                                       r"on device.*free disk space.*--resume: the last complete checkpoint is "
                                       r"step 4"):
        trainer.train()
    assert committed(run) == [2, 4] and not leftovers(run)
    jax.tree.map(np.testing.assert_array_equal, load(run).params, load(runs["ref"]["dir"], step=4).params)
    result = tiny_trainer(cfg(run), resume=True).train()  # space freed: the run continues from step 4
    assert_same_run(result, run, runs["ref"], exact=True)


def _mount_tmpfs(path, size_kb) -> bool:
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                             capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax's failed async write
def test_real_full_disk_keeps_earlier_checkpoints(runs, tmp_path):
    """A real ENOSPC (a 600 KiB tmpfs holds about three checkpoints of this model); needs mount rights."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _mount_tmpfs(mnt, 600):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the injected ENOSPC test covers "
                    "the error path")
    try:
        from _train_helpers import TinyTokenizer, reverse_task

        from trm_jax.training import create_trainer

        run = mnt / "run"
        trainer = create_trainer(cfg(run, checkpoint_every=1, keep_checkpoints=8), tokenizer=TinyTokenizer(),
                                 datasets_fn=reverse_task, async_checkpoints=True)  # as scripts/train.py
        with pytest.raises(TRMError, match=rf"{run}.*(No space left on device|RESOURCE_EXHAUSTED).*--resume"):
            trainer.train()
        done = committed(run)
        assert done, "not even one checkpoint fitted: make the tmpfs larger"
        for step in done:  # every committed checkpoint is intact
            assert load(run, step=step).step == step
        moved = tmp_path / "moved"  # "free space": continue on another disk
        shutil.copytree(run, moved)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
    result = tiny_trainer(cfg(moved), resume=True).train()
    assert_same_run(result, moved, runs["ref"], exact=True)


# ------------------------------------------------------------------------------------------ NaN / Inf

def test_nonfinite_batch_skips_update_and_k_in_a_row_stop_the_run(tmp_path, caplog):
    """A corrupted batch (every slot's tokens outside the vocabulary -> NaN embeddings, loss, gradients)
    at step 3, then at steps 5, 6, 7 with max_consecutive_nonfinite=3 and log_every=4."""
    from trm_jax.training import distributed as dist

    bad_steps = {3, 5, 6, 7}
    trainer = tiny_trainer(cfg(tmp_path, max_consecutive_nonfinite=3, log_every=4))
    calls, states = [0], {}
    build = trainer.run.stages.build

    def build_stage(spec):
        stage = build(spec)
        step_fn = stage.p_step

        def p_step(state, carry, batch, key):
            calls[0] += 1
            n = calls[0]
            before = jax.device_get(dist.unreplicate(state))
            if n in bad_steps:
                bad = np.full(np.shape(batch["inputs"]), VOCAB + 7, np.int32)
                batch = dict(batch, inputs=bad)
                # same sharding as the step's own output: no recompilation
                carry = carry._replace(inputs=jax.device_put(bad, carry.inputs.sharding))
            new_state, new_carry, metrics = step_fn(state, carry, batch, key)
            states[n] = (before, jax.device_get(dist.unreplicate(new_state)), dist.unreplicate(metrics))
            return new_state, new_carry, metrics

        stage.p_step = p_step
        return stage

    trainer.run.stages.build = build_stage
    with caplog.at_level(logging.WARNING, logger="trm_jax"), pytest.raises(TRMError) as err:
        trainer.train()
    msg = str(err.value)
    assert "diverged at step 8: 3 consecutive steps with a non-finite loss or gradient" in msg
    assert "training.learning_rate" in msg and "--resume (last checkpoint: step 6)" in msg

    def equal(a, b):
        return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(x, y, equal_nan=True), a, b)))

    before, after, m = states[3]
    assert not np.isfinite(m["loss"])
    assert equal(after.params, before.params) and equal(after.ema_params, before.ema_params)
    assert equal(after.opt_state, before.opt_state)
    assert int(after.step) == int(before.step) + 1 and int(after.nonfinite) == 1
    before, after, m = states[4]  # a good step: real update, counter reset
    assert np.isfinite(m["loss"]) and int(after.nonfinite) == 0 and not equal(after.params, before.params)
    assert [int(states[n][1].nonfinite) for n in (5, 6, 7, 8)] == [1, 2, 3, 0]
    assert all(equal(states[n][1].params, states[4][1].params) for n in (5, 6, 7))
    assert "steps 1-4: 1 update(s) skipped for a non-finite loss or gradient" in caplog.text
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["skipped"]) for r in recs] == [(4, 1), (8, 3)]
    assert committed(tmp_path) == [2, 4, 6]  # the last good state is kept: resumable


# ----------------------------------------------------------------------------- writes stay in run_dir

def test_config_values_cannot_make_the_trainer_write_outside_run_dir(tmp_path, monkeypatch):
    """Every write goes to run_dir/{config.yaml, tokenizer/, checkpoints/, metrics.jsonl, train.log, rag/}:
    path-like strings in other config values (names, separators) are never used as write paths."""
    from trm_jax.training import create_trainer

    sandbox = tmp_path / "sandbox"
    (sandbox / "work" / "sub").mkdir(parents=True)
    monkeypatch.chdir(sandbox / "work" / "sub")
    monkeypatch.setenv("HOME", str(sandbox / "home"))
    before = {p for p in sandbox.rglob("*")}
    evil = "../../../escaped"
    trainer = create_trainer({
        "run_dir": "../run",  # relative to the working directory: sandbox/work/run
        "model": dict(dim=16, depth=1, num_refinement_blocks=2, max_recursion_depth=2),
        "data": dict(task="code", seq_len=32, num_train=32, num_eval=8, code_num_facts=16),
        "rag": dict(enabled=True, embedder="hashing", hashing_dim=32, model_name=evil, separator=f"\n{evil}/"),
        "training": dict(batch_size=8, steps=1, progress_bar=False),
        "monitoring": dict(enabled=False),
    })
    trainer.close()  # construction wrote every run file (training adds checkpoints/<step> and metrics lines)
    run = sandbox / "work" / "run"
    new = {p for p in sandbox.rglob("*")} - before
    outside = sorted(str(p) for p in new if run not in p.parents and p != run)
    assert not outside, outside
    assert {p.name for p in run.iterdir()} <= {"config.yaml", "tokenizer", "checkpoints", "metrics.jsonl",
                                               "train.log", "rag"}
    assert {"config.yaml", "tokenizer", "checkpoints", "rag", "train.log"} <= {p.name for p in run.iterdir()}
    assert not list(tmp_path.parent.glob("escaped*")) and not (sandbox / "escaped").exists()
