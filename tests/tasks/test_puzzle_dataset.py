"""Official dataset directories (data.task: puzzle_dataset): layout written here from the format's
description (official dataset/common.py, puzzle_dataset.py), read back memory-mapped, puzzle ids,
masking, validation errors, and a tiny training run through the config path."""

import json
import os

import numpy as np
import pytest

from trm_jax.config import load_config
from trm_jax.data.iterators import BatchIterator, eval_batches
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.tasks.puzzle_dataset.files import make_puzzle_dataset

SEQ, VOCAB = 6, 7


def _write_split(root, split, puzzles_per_group, examples_per_puzzle, identifiers, seed=0, **meta_overrides):
    """A split as the official builders write it: uint8 token arrays (labels 0 = ignored), int32 indices."""
    rng = np.random.default_rng(seed)
    puzzle_indices, group_indices, n = [0], [0], 0
    for g, count in enumerate(puzzles_per_group):
        for _ in range(count):
            n += examples_per_puzzle
            puzzle_indices.append(n)
        group_indices.append(group_indices[-1] + count)
    inputs = rng.integers(1, VOCAB, (n, SEQ)).astype(np.uint8)
    labels = inputs[:, ::-1].copy()
    labels[:, -1] = 0  # the last position is padding: masked
    meta = dict(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=VOCAB, seq_len=SEQ,
                num_puzzle_identifiers=int(max(identifiers)) + 1, total_groups=len(puzzles_per_group),
                mean_puzzle_examples=float(examples_per_puzzle), total_puzzles=len(identifiers), sets=["all"])
    meta.update(meta_overrides)
    d = os.path.join(root, split)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "dataset.json"), "w") as f:
        json.dump(meta, f)
    arrays = dict(inputs=inputs, labels=labels, puzzle_identifiers=np.asarray(identifiers, np.int32),
                  puzzle_indices=np.asarray(puzzle_indices, np.int32), group_indices=np.asarray(group_indices, np.int32))
    for k, v in arrays.items():
        np.save(os.path.join(d, f"all__{k}.npy"), v)
    return inputs, labels


@pytest.fixture
def dataset_dir(tmp_path):
    root = str(tmp_path / "ds")
    # train: 3 groups of (2, 1, 2) puzzles, 3 examples each, identifiers 1..5 (0 = blank)
    train = _write_split(root, "train", [2, 1, 2], 3, [1, 2, 3, 4, 5])
    test = _write_split(root, "test", [1, 1], 2, [0, 0], seed=1, num_puzzle_identifiers=6)
    return root, train, test


def test_reads_memory_mapped_with_puzzle_ids_and_masking(dataset_dir):
    root, (x, y), _ = dataset_dir
    ds = make_puzzle_dataset(root, "train")
    assert len(ds) == 15 and isinstance(ds.inputs, np.memmap) and ds.inputs.dtype == np.uint8
    assert ds.puzzle_ids.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]
    inputs, labels = ds.rows(np.arange(15))
    assert inputs.dtype == labels.dtype == np.int32 and (inputs == x).all()
    assert (labels[:, -1] == -100).all() and (labels[:, :-1] == y[:, :-1]).all()
    batch = next(BatchIterator(ds, 4, seed=0))
    assert batch["puzzle_ids"].dtype == np.int32 and (batch["labels"][:, -1] == -100).all()
    rows = [int(np.flatnonzero((x == b).all(axis=1))[0]) for b in batch["inputs"]]
    assert batch["puzzle_ids"].tolist() == [ds.puzzle_ids[r] for r in rows]
    ev = make_puzzle_dataset(root, "eval")  # the official "test" split
    assert len(ev) == 4 and ev.puzzle_ids.tolist() == [0, 0, 0, 0]
    last = list(eval_batches(ev, 3))[-1]
    assert last["puzzle_ids"].tolist() == [0, 0, 0] and last["mask"].tolist() == [True, False, False]
    sub = ds.subset([14, 0])
    assert sub.puzzle_ids.tolist() == [5, 1] and (sub.rows([0])[1][0, -1] == -100)


def test_config_path_tokenizer_and_seq_len(dataset_dir):
    root, _, _ = dataset_dir
    cfg = load_config(None, ["data.task=puzzle_dataset", f"data.dataset_dir={root}", f"data.seq_len={SEQ}"])
    tok, vocab, pad = get_task(cfg).tokenizer()
    assert vocab == VOCAB and pad == 0
    train, ev = get_task(cfg).datasets(tok)
    assert len(train) == 15 and len(ev) == 4
    with pytest.raises(TRMError, match=r"dataset\.json: seq_len is 6 but data\.seq_len is 8"):
        get_task(load_config(None, ["data.task=puzzle_dataset", f"data.dataset_dir={root}", "data.seq_len=8"])).datasets(tok)


@pytest.mark.parametrize("change, message", [
    (lambda d: _edit_json(d, seq_len=9), r"train/dataset\.json \(set 'all'\): seq_len is 9 but the arrays have 6"),
    (lambda d: _edit_json(d, vocab_size=3), r"all__inputs\.npy row 0 has token ids outside \[0, vocab_size=3\)"),
    (lambda d: _edit_json(d, num_puzzle_identifiers=2), r"puzzle identifiers span \[1, 5\]"),
    (lambda d: _edit_json(d, drop="sets"), r"train/dataset\.json: missing key 'sets'"),
    (lambda d: np.save(os.path.join(d, "all__puzzle_indices.npy"), np.array([0, 3, 6], np.int32)),
     r"puzzle_indices must rise from 0 to the 15 examples"),
    (lambda d: os.remove(os.path.join(d, "all__labels.npy")), r"train/all__labels\.npy not found"),
    (lambda d: np.save(os.path.join(d, "all__labels.npy"), np.zeros((15, 5), np.uint8)),
     r"inputs \(15, 6\) and labels \(15, 5\)"),
    (lambda d: np.save(os.path.join(d, "all__inputs.npy"), np.array([{"a": 1}] * 15, dtype=object)),
     r"all__inputs\.npy: not a readable \.npy array without pickled objects"),
])
def test_mismatched_directory_is_one_clear_error(dataset_dir, change, message):
    root, _, _ = dataset_dir
    change(os.path.join(root, "train"))
    with pytest.raises(TRMError, match=message):
        make_puzzle_dataset(root, "train")


def _edit_json(split_dir, drop=None, **values):
    path = os.path.join(split_dir, "dataset.json")
    with open(path) as f:
        meta = json.load(f)
    meta.update(values)
    meta.pop(drop, None)
    with open(path, "w") as f:
        json.dump(meta, f)


def test_missing_directory_errors(tmp_path):
    with pytest.raises(TRMError, match="dataset.json not found"):
        make_puzzle_dataset(str(tmp_path), "train")
    from trm_jax.errors import ConfigError
    with pytest.raises(ConfigError, match=r"'data.dataset_dir': directory not found"):
        get_task(load_config(None, ["data.task=puzzle_dataset", f"data.dataset_dir={tmp_path / 'none'}"]))
    task = get_task(load_config(None, ["data.task=puzzle_dataset"]))  # a trained model answers without it
    with pytest.raises(ConfigError, match=r"'data.dataset_dir': task 'puzzle_dataset' needs data.dataset_dir"):
        task.tokenizer()


def test_trains_and_evaluates_through_the_config_path(dataset_dir, tmp_path):
    from trm_jax.training import create_trainer

    root, _, _ = dataset_dir
    cfg = load_config(None, [
        "data.task=puzzle_dataset", f"data.dataset_dir={root}", f"data.seq_len={SEQ}", f"run_dir={tmp_path / 'run'}",
        "model.variant=official", "model.network=transformer", "model.dim=16", "model.depth=1", "model.num_heads=2",
        "model.num_latent_refinements=1", "model.num_refinement_blocks=2", "model.max_recursion_depth=2",
        "model.puzzle_emb_ndim=16", "model.num_puzzle_identifiers=6",
        "training.batch_size=4", "training.steps=3", "training.eval_every=3", "training.log_every=1",
        "training.checkpoint_every=1000", "training.eval_batch_size=4", "training.progress_bar=false"])
    result = create_trainer(cfg).train()
    assert result.step == 3 and np.isfinite(result.metrics["loss"])
    assert 0.0 <= result.eval["exact_accuracy"] <= 1.0
