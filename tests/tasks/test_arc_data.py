"""ARC data: task loading and validation, the official encoding, augmentations, the cached build."""

import json
import os

import numpy as np
import pytest

from trm_jax.errors import TRMError
from trm_jax.tasks.arc.augment import (Augmentation, choose_augmentations, dihedral_transform,
                                       inverse_dihedral_transform, parse_puzzle_identifier, puzzle_identifier_name,
                                       task_rng)
from trm_jax.tasks.arc.build import ARC_SEQ_LEN, build_arc, build_arc_datasets, encode_grids, load_tasks
from trm_jax.tasks.arc.encoding import crop_sizes, decode_grid


def _task(seed, n_train=2, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    pair = lambda: {"input": rng.integers(0, 10, shape).tolist(), "output": rng.integers(0, 10, shape[::-1]).tolist()}
    return {"train": [pair() for _ in range(n_train)], "test": [pair()]}


def _official_encode(grid, pad_r, pad_c):
    """Independent reference: official build_arc_dataset.py np_grid_to_seq_translational_augment, one grid."""
    nrow, ncol = grid.shape
    out = np.pad(grid + 2, ((pad_r, 30 - pad_r - nrow), (pad_c, 30 - pad_c - ncol)), constant_values=0)
    eos_row, eos_col = pad_r + nrow, pad_c + ncol
    if eos_row < 30:
        out[eos_row, pad_c:eos_col] = 1
    if eos_col < 30:
        out[pad_r:eos_row, eos_col] = 1
    return out.flatten()


def _official_dihedral(arr, tid):
    return [arr, np.rot90(arr, 1), np.rot90(arr, 2), np.rot90(arr, 3), np.fliplr(arr), np.flipud(arr), arr.T,
            np.fliplr(np.rot90(arr, 1))][tid]


def test_builtin_sources_load():
    a1_train, a1_eval = load_tasks("arc-agi-1", "training"), load_tasks("arc-agi-1", "evaluation")
    assert (len(a1_train), len(a1_eval)) == (400, 400)
    a2_eval = load_tasks("arc-agi-2", "evaluation")
    assert len(a2_eval) == 120
    assert all("output" in t for task in a1_eval.values() for t in task["test"])


def test_kaggle_layout_and_folder(tmp_path):
    tasks = {"aa": _task(0), "bb": _task(1)}
    chal = {k: {"train": v["train"], "test": [{"input": t["input"]} for t in v["test"]]} for k, v in tasks.items()}
    sols = {k: [t["output"] for t in v["test"]] for k, v in tasks.items()}
    (tmp_path / "arc-agi_evaluation_challenges.json").write_text(json.dumps(chal))
    (tmp_path / "arc-agi_evaluation_solutions.json").write_text(json.dumps(sols))
    assert load_tasks(str(tmp_path), "evaluation") == tasks
    assert load_tasks(str(tmp_path / "arc-agi_evaluation_challenges.json")) == tasks
    folder = tmp_path / "tasks" / "training"
    folder.mkdir(parents=True)
    for k, v in tasks.items():
        (folder / f"{k}.json").write_text(json.dumps(v))
    assert load_tasks(str(tmp_path / "tasks"), "training") == tasks
    # challenges without solutions: test outputs absent
    os.remove(tmp_path / "arc-agi_evaluation_solutions.json")
    assert "output" not in load_tasks(str(tmp_path), "evaluation")["aa"]["test"][0]


@pytest.mark.parametrize("grid, message", [
    ([[1, 2], [3]], "not rectangular"),
    ([[1, 12]], "cell (0, 1) is 12"),
    ([[0] * 31], "31 columns"),
    ([[0]] * 31, "31 rows"),
    ([], "non-empty"),
    ([[1, 2.5]], "cell (0, 1)"),
])
def test_bad_grid_errors_name_task_and_example(tmp_path, grid, message):
    task = _task(0)
    task["train"][1]["output"] = grid
    (tmp_path / "x_training_challenges.json").write_text(json.dumps({"badtask": task}))
    with pytest.raises(TRMError) as e:
        load_tasks(str(tmp_path), "training")
    assert "badtask" in str(e.value) and "train example 1 output" in str(e.value) and message in str(e.value)


def test_unknown_source_and_split():
    with pytest.raises(TRMError, match="neither"):
        load_tasks("/no/such/arc", "training")
    with pytest.raises(TRMError, match="split"):
        load_tasks("arc-agi-1", "test")


def test_encoding_matches_official_and_round_trips():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (30, 30), (30, 7), (12, 30)]:
        grid = rng.integers(0, 10, shape).astype(np.uint8)
        for tid in range(8):
            t = dihedral_transform(grid, tid)
            np.testing.assert_array_equal(t, _official_dihedral(grid, tid))
            np.testing.assert_array_equal(inverse_dihedral_transform(t, tid), grid)
            h, w = t.shape
            offsets = [(0, 0), (30 - h, 30 - w), (rng.integers(0, 31 - h), rng.integers(0, 31 - w))]
            for perm in [np.arange(10), np.concatenate([[0], rng.permutation(np.arange(1, 10))])]:
                aug = Augmentation(tid, tuple(int(c) for c in perm))
                ag = aug.apply(grid)
                enc = encode_grids(ag[None], [o[0] for o in offsets[:1]], [o[1] for o in offsets[:1]])
                batch = encode_grids(np.stack([ag] * 3), [o[0] for o in offsets], [o[1] for o in offsets])
                for row, (pr, pc) in zip(batch, offsets):
                    np.testing.assert_array_equal(row, _official_encode(ag, pr, pc))
                np.testing.assert_array_equal(aug.invert(decode_grid(enc[0])), grid)


def test_crop_matches_official_scan():
    def official_crop(g):
        g = g.reshape(30, 30)
        max_area, size, num_c = 0, (0, 0), 30
        for num_r in range(1, 31):
            for c in range(1, num_c + 1):
                if not 2 <= g[num_r - 1, c - 1] <= 11:
                    num_c = c - 1
                    break
            if num_r * num_c > max_area:
                max_area, size = num_r * num_c, (num_r, num_c)
        return size

    rng = np.random.default_rng(1)
    rows = rng.choice([0, 1, 2, 5, 11], p=[0.05, 0.05, 0.3, 0.3, 0.3], size=(200, 900))
    rows[:20] = encode_grids(rng.integers(0, 10, (20, 4, 7)))
    r, c = crop_sizes(rows)
    assert [official_crop(x) for x in rows] == list(zip(r.tolist(), c.tolist()))


def test_identifier_names_round_trip():
    aug = Augmentation(5, (0, 3, 1, 2, 4, 5, 6, 7, 9, 8))
    name = puzzle_identifier_name("abc", aug)
    assert name == "abc|||t5|||0312456798"
    assert parse_puzzle_identifier(name) == ("abc", aug)
    assert parse_puzzle_identifier("abc")[0] == "abc" and parse_puzzle_identifier("abc")[1].is_identity


def test_augmentations_are_distinct_in_content():
    # a fully symmetric one-colour task: dihedral transforms do nothing, only 9 colourings exist
    grid = np.full((2, 2), 3, np.uint8)
    tids, maps = choose_augmentations([(grid, grid)], 50, task_rng(0, "sym", 0))
    assert len(tids) == 8  # colour 3 -> any of the other 8 non-zero colours; the original is excluded
    assert len({int(m[3]) for m in maps}) == 8 and 3 not in {int(m[3]) for m in maps}
    assert all(m[0] == 0 and sorted(m.tolist()) == list(range(10)) for m in maps)
    # a generic task: all requested, all different, none the identity
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 10, (3, 4)).astype(np.uint8), rng.integers(0, 10, (4, 3)).astype(np.uint8))]
    tids, maps = choose_augmentations(pairs, 100, task_rng(0, "x", 0))
    contents = {tuple(Augmentation(int(t), tuple(m.tolist())).apply(pairs[0][0]).ravel()) + (int(t) % 2,)
                for t, m in zip(tids, maps)}
    assert len(tids) == 100 and len(contents) == 100


def _write_tasks(tmp_path, train, evaluation):
    for split, tasks in (("training", train), ("evaluation", evaluation)):
        d = tmp_path / "arc" / split
        d.mkdir(parents=True, exist_ok=True)
        for k, v in tasks.items():
            (d / f"{k}.json").write_text(json.dumps(v))
    return str(tmp_path / "arc")


def test_build_layout_translation_and_cache(tmp_path):
    src = _write_tasks(tmp_path, {"t1": _task(0), "t2": _task(1, 3)}, {"e1": _task(2)})
    cache = str(tmp_path / "cache")
    b = build_arc(src, num_aug=4, cache_dir=cache, progress=False)
    # identifiers: blank + 3 tasks x (1 + 4)
    assert b.num_puzzle_identifiers == 16 and b.identifiers[0] == "<blank>"
    # train rows: t1 3 pairs, t2 4 pairs, e1 its 2 demonstrations (transductive), each x 5; eval: e1 test x 5
    assert len(b.train_inputs) == 5 * (3 + 4 + 2) and len(b.eval_inputs) == 5
    assert b.train_inputs.shape[1] == ARC_SEQ_LEN and b.train_inputs.dtype == np.uint8
    # eval rows: untranslated, their puzzle ids are e1's identifiers, decode back to the test pair
    e1_ids = [i for i, n in enumerate(b.identifiers) if n.split("|||")[0] == "e1"]
    assert sorted(b.eval_puzzle_ids.tolist()) == e1_ids
    test_pair = b.eval_tasks["e1"]["test"][0]
    for x, y, pid in zip(b.eval_inputs, b.eval_labels, b.eval_puzzle_ids):
        _, aug = parse_puzzle_identifier(b.identifiers[pid])
        assert aug.invert(decode_grid(x)).tolist() == test_pair["input"]
        assert aug.invert(decode_grid(y)).tolist() == test_pair["output"]
    # the test inputs of e1 never appear among training rows
    eval_set = {x.tobytes() for x in b.eval_inputs}
    assert not any(x.tobytes() in eval_set for x in b.train_inputs)
    # per augmented puzzle: exactly one pair at the top-left corner unless translation happened to pick it
    for pid in np.unique(b.train_puzzle_ids):
        rows = b.train_inputs[b.train_puzzle_ids == pid].reshape(-1, 30, 30)
        assert (rows[:, 0, 0] >= 2).sum() >= 1
    # and the others are translated: with 45 rows of small grids, some start away from the corner
    assert (b.train_inputs.reshape(-1, 30, 30)[:, 0, 0] < 2).sum() > 0
    # cache: second call loads, a settings change rebuilds elsewhere
    again = build_arc(src, num_aug=4, cache_dir=cache, progress=False)
    assert again.path == b.path and np.array_equal(again.train_inputs, b.train_inputs)
    other = build_arc(src, num_aug=2, cache_dir=cache, progress=False)
    assert other.path != b.path and len(other.eval_inputs) == 3
    # a source change (one cell of a task) changes the key
    t = _task(0)
    t["train"][0]["input"][0][0] = (t["train"][0]["input"][0][0] + 1) % 10
    (tmp_path / "arc" / "training" / "t1.json").write_text(json.dumps(t))
    assert build_arc(src, num_aug=4, cache_dir=cache, progress=False).path != b.path


def test_datasets_labels_and_puzzle_ids(tmp_path):
    src = _write_tasks(tmp_path, {"t1": _task(0)}, {"e1": _task(2)})
    train, ev = build_arc_datasets(src, num_aug=3, cache_dir=str(tmp_path / "c"), progress=False)
    assert isinstance(train.inputs, np.memmap)  # not copied into int32
    assert train.puzzle_ids is not None and train.puzzle_ids.min() >= 1
    x, y = train.rows(np.arange(len(train)))
    assert x.dtype == np.int32 and set(np.unique(y)) <= {-100} | set(range(1, 12))
    np.testing.assert_array_equal(y == -100, np.asarray(train.labels) == 0)
    assert len(ev) == 4 and ev.puzzle_ids_at([0]).dtype == np.int32


def test_refuses_arc_agi_2_training_with_arc_agi_1_eval(tmp_path):
    with pytest.raises(TRMError, match="ARC-AGI-2 training data contains ARC-AGI-1 evaluation"):
        build_arc("arc-agi-1", num_aug=0, extra_train_sources=["arc-agi-2"], max_tasks=1,
                  cache_dir=str(tmp_path), progress=False)


def test_refuses_many_eval_tasks_in_training_warns_on_a_few(tmp_path, caplog):
    evals = {f"e{i}": _task(100 + i) for i in range(11)}
    copies = {f"c{i}": {"train": list(reversed(t["train"])), "test": t["test"]} for i, t in enumerate(evals.values())}
    src = _write_tasks(tmp_path, copies, evals)
    with pytest.raises(TRMError, match="11 evaluation tasks .* are also training tasks"):
        build_arc(src, num_aug=0, cache_dir=str(tmp_path / "c"), progress=False)
    assert len(build_arc(src, num_aug=0, allow_eval_leak=True, cache_dir=str(tmp_path / "c"),
                         progress=False).eval_inputs) == 11
    # one duplicated task (ARC-AGI-1 has one: 40853293 == 070dd51e): a warning naming it
    src2 = _write_tasks(tmp_path / "b", {"c0": copies["c0"]}, {"e0": evals["e0"]})
    with caplog.at_level("WARNING"):
        build_arc(src2, num_aug=0, cache_dir=str(tmp_path / "c"), progress=False)
    assert "e0 (= " in caplog.text and "c0)" in caplog.text
