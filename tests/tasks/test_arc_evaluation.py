"""ARC evaluation: submission scoring, voting through inverse augmentations, pass@K, submission format."""

import json

import numpy as np
import pytest

from trm_jax.errors import TRMError
from trm_jax.tasks.arc import (ArcVoter, evaluate_arc, evaluate_arc_build, make_submission, pass_at_k,
                               score_arc_submission, write_submission)
from trm_jax.tasks.arc.augment import Augmentation, puzzle_identifier_name
from trm_jax.tasks.arc.build import build_arc, encode_grids

A, B, C = [[1, 2], [3, 4]], [[5]], [[0, 0, 7]]
TASKS = {
    "one": {"train": [{"input": A, "output": A}], "test": [{"input": A, "output": B}]},
    "two": {"train": [{"input": A, "output": A}], "test": [{"input": A, "output": B}, {"input": B, "output": C}]},
}


def test_score_hand_made_submissions():
    right = {"one": [{"attempt_1": B, "attempt_2": C}], "two": [{"attempt_1": B, "attempt_2": A},
                                                               {"attempt_1": C, "attempt_2": C}]}
    assert score_arc_submission(right, TASKS) == {"pass@1": 1.0, "pass@2": 1.0}
    wrong = {"one": [{"attempt_1": A, "attempt_2": C}], "two": [{"attempt_1": A, "attempt_2": A},
                                                               {"attempt_1": B, "attempt_2": A}]}
    assert score_arc_submission(wrong, TASKS) == {"pass@1": 0.0, "pass@2": 0.0}
    second = {"one": [{"attempt_1": A, "attempt_2": B}], "two": [{"attempt_1": A, "attempt_2": A},
                                                                {"attempt_1": B, "attempt_2": C}]}
    # one: only attempt_2 right -> pass@2 1; two: 1 of 2 test inputs (attempt_2) -> 0.5
    assert score_arc_submission(second, TASKS) == {"pass@1": 0.0, "pass@2": 0.75}
    half = {"one": [{"attempt_1": B, "attempt_2": B}], "two": [{"attempt_1": B, "attempt_2": B},
                                                              {"attempt_1": A, "attempt_2": A}]}
    assert score_arc_submission(half, TASKS) == {"pass@1": 0.75, "pass@2": 0.75}
    # a missing task scores 0; a missing attempt never matches and does not shift the others
    assert score_arc_submission({"one": [{"attempt_2": B}]}, TASKS) == {"pass@1": 0.0, "pass@2": 0.5}
    assert score_arc_submission({"one": [{"attempt_1": [], "attempt_2": B}]}, TASKS)["pass@2"] == 0.5


def test_score_reads_json_and_rejects_bad_shapes(tmp_path):
    path = tmp_path / "sub.json"
    path.write_text(json.dumps({"one": [{"attempt_1": B, "attempt_2": B}]}))
    assert score_arc_submission(str(path), {"one": TASKS["one"]})["pass@1"] == 1.0
    with pytest.raises(TRMError, match="task 'two': expected a list of 2 entries"):
        score_arc_submission({"two": [{"attempt_1": B}]}, TASKS)
    with pytest.raises(TRMError, match="attempt_1"):
        score_arc_submission({"one": [{"attempt_1": 5}]}, TASKS)


def _rows(task_id, grid, augs):
    """Encode `grid` under each augmentation, and the identifiers table those rows use."""
    identifiers = ["<blank>"] + [puzzle_identifier_name(task_id, a) for a in augs]
    x = np.concatenate([encode_grids(a.apply(np.asarray(grid, np.uint8))[None]) for a in augs]).astype(np.int32)
    return x, np.arange(1, len(augs) + 1, dtype=np.int32), identifiers


AUGS = [Augmentation(t, tuple([0] + list(np.random.default_rng(t).permutation(np.arange(1, 10))))) for t in range(8)]


def test_voting_maps_predictions_back_through_each_augmentation():
    # 8 rows: the same test input under 8 dihedral x colour augmentations; the identity model
    # predicts the (augmented) input, which maps back to the original input every time
    grid = [[1, 2, 3], [4, 5, 6]]
    x, pids, ids = _rows("t", grid, AUGS)
    identity = lambda inputs, puzzle_ids: (inputs, np.full(len(inputs), 0.9))
    same = {"t": {"train": [{"input": grid, "output": grid}], "test": [{"input": grid, "output": grid}]}}
    r = evaluate_arc(identity, x, pids, ids, same, pass_ks=(1, 2), batch_size=3)
    assert r.metrics == {"pass@1": 1.0, "pass@2": 1.0}
    assert r.ranked["t"][0][0][1] == 8  # all 8 votes on one candidate
    assert r.submission == {"t": [{"attempt_1": grid, "attempt_2": grid}]}
    other = {"t": {"train": same["t"]["train"], "test": [{"input": grid, "output": [[1, 2, 3], [4, 5, 7]]}]}}
    assert evaluate_arc(identity, x, pids, ids, other, pass_ks=(1, 2), batch_size=8).metrics["pass@2"] == 0.0


def test_vote_ranks_by_count_then_mean_halt_probability():
    grid = np.array([[1, 2], [3, 4]], np.uint8)
    answers = {"majority": np.array([[9]], np.uint8), "confident": np.array([[8]], np.uint8),
               "unsure": np.array([[7]], np.uint8)}
    plan = [("majority", 0.1)] * 3 + [("confident", 0.9), ("confident", 0.8), ("unsure", 0.2), ("unsure", 0.3)]
    augs = AUGS[:7]
    x, pids, ids = _rows("t", grid, augs)
    preds = np.concatenate([encode_grids(a.apply(answers[name])[None]) for a, (name, _) in zip(augs, plan)])
    voter = ArcVoter(ids)
    voter.add(x, pids, preds, np.array([q for _, q in plan]))
    ranked = voter.ranked("t", grid)
    assert [g.tolist() for g, _, _ in ranked] == [[[9]], [[8]], [[7]]]
    assert [c for _, c, _ in ranked] == [3, 2, 2]
    assert ranked[1][2] == pytest.approx(0.85)
    tasks = {"t": {"train": [], "test": [{"input": grid.tolist(), "output": [[7]]}]}}
    ranked_grids = {"t": [[g for g, _, _ in ranked]]}
    assert pass_at_k(ranked_grids, tasks, (1, 2, 3)) == {"pass@1": 0.0, "pass@2": 0.0, "pass@3": 1.0}
    sub = make_submission(ranked_grids, tasks, attempts=2)
    assert sub == {"t": [{"attempt_1": [[9]], "attempt_2": [[8]]}]}


def test_submission_pads_attempts_and_keeps_alignment(tmp_path):
    tasks = {"t": {"train": [], "test": [{"input": A}, {"input": B}]}}
    sub = make_submission({"t": [[np.array(C)], []]}, tasks)
    assert sub == {"t": [{"attempt_1": C, "attempt_2": C}, {"attempt_1": [[0]], "attempt_2": [[0]]}]}
    # an empty decoded grid becomes [[0]] (a valid Kaggle grid)
    assert make_submission({"t": [[np.zeros((0, 0))], [np.array(A)]]}, tasks)["t"][0]["attempt_1"] == [[0]]
    path = write_submission(sub, str(tmp_path / "out" / "submission.json"))
    assert json.load(open(path)) == sub


def test_blank_padding_rows_are_ignored_and_bad_outputs_rejected():
    grid = [[3]]
    x, pids, ids = _rows("t", grid, AUGS[:1])
    task = {"t": {"train": [], "test": [{"input": grid, "output": grid}]}}
    calls = []

    def fn(inputs, puzzle_ids):
        calls.append(puzzle_ids.tolist())
        return inputs, np.ones(len(inputs))

    r = evaluate_arc(fn, x, pids, ids, task, pass_ks=(1,), batch_size=4)
    assert calls == [[1, 0, 0, 0]] and r.ranked["t"][0][0][1] == 1
    with pytest.raises(TRMError, match="predict_fn must return"):
        evaluate_arc(lambda i, p: (i[:, :10], np.ones(len(i))), x, pids, ids, task, batch_size=2)


def test_end_to_end_on_a_built_arc_dataset(tmp_path):
    # identity-answer tasks (output == input) and a shifted-colour task: the identity model solves only the first
    for name, d in (("training", "t1"), ("evaluation", "e_same"), ("evaluation", "e_diff")):
        folder = tmp_path / "arc" / name
        folder.mkdir(parents=True, exist_ok=True)
        g = np.random.default_rng(len(d)).integers(0, 10, (3, 4)).tolist()
        out = g if d != "e_diff" else [[(v + 1) % 10 for v in row] for row in g]
        (folder / f"{d}.json").write_text(json.dumps({"train": [{"input": g, "output": out}],
                                                      "test": [{"input": g, "output": out}]}))
    b = build_arc(str(tmp_path / "arc"), num_aug=5, cache_dir=str(tmp_path / "c"), progress=False)
    r = evaluate_arc_build(lambda i, p: (i, np.full(len(i), 0.5)), b, pass_ks=(1, 2), batch_size=4)
    assert r.metrics == {"pass@1": 0.5, "pass@2": 0.5}
    assert score_arc_submission(r.submission, b.eval_tasks) == r.metrics


def test_official_model_through_the_arc_evaluator(tmp_path):
    import jax

    from trm_jax.tasks.arc import model_predict_fn
    from trm_jax.config import ModelConfig
    from trm_jax.models import init_params, make_model

    folder = tmp_path / "arc" / "evaluation"
    folder.mkdir(parents=True)
    (tmp_path / "arc" / "training").mkdir()
    g = [[1, 2], [3, 4]]
    (tmp_path / "arc" / "training" / "t.json").write_text(json.dumps({"train": [{"input": g, "output": g}],
                                                                      "test": [{"input": [[5]], "output": [[6]]}]}))
    (folder / "e.json").write_text(json.dumps({"train": [{"input": g, "output": g}], "test": [{"input": g, "output": g}]}))
    b = build_arc(str(tmp_path / "arc"), num_aug=2, cache_dir=str(tmp_path / "c"), progress=False)
    cfg = ModelConfig(variant="official", network="transformer", dim=16, depth=1, num_heads=2, num_tokens=12,
                      puzzle_emb_ndim=16, num_puzzle_identifiers=b.num_puzzle_identifiers,
                      num_refinement_blocks=2, num_latent_refinements=1, max_recursion_depth=2)
    model = make_model(cfg, seq_len=900)
    params = init_params(model, jax.random.PRNGKey(0))
    r = evaluate_arc_build(model_predict_fn(model, params), b, pass_ks=(1, 2), batch_size=4)
    assert set(r.metrics) == {"pass@1", "pass@2"} and 0.0 <= r.metrics["pass@1"] <= r.metrics["pass@2"] <= 1.0
    assert len(r.submission["e"]) == 1 and score_arc_submission(r.submission, b.eval_tasks) == r.metrics
    assert sum(c for _, c, _ in r.ranked["e"][0]) == 3  # the original and 2 augmentations voted
