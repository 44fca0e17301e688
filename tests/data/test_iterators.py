"""BatchIterator determinism, resume, sharding, epochs; eval_batches coverage."""

import numpy as np
import pytest

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.iterators import BatchIterator, eval_batches, num_eval_batches
from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks import sudoku as S
from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset


def _dataset(n=10, seq_len=4):
    inputs = np.arange(n * seq_len, dtype=np.int32).reshape(n, seq_len)
    return ArrayDataset(inputs, inputs + 1000, np.arange(n, dtype=np.float32) / n)


def _take(it, k):
    return [next(it) for _ in range(k)]


def _rows(batch):
    return (batch["inputs"][:, 0] // 4).tolist()


def test_batches_fixed_shape_and_seeded():
    ds = _dataset()
    a, b, c = (BatchIterator(ds, 4, seed=s) for s in (0, 0, 1))
    ba, bb, bc = _take(a, 6), _take(b, 6), _take(c, 6)
    for x in ba:
        assert x["inputs"].shape == (4, 4) and x["inputs"].dtype == np.int32
        assert x["labels"].dtype == np.int32 and x["difficulty"].shape == (4,) and x["difficulty"].dtype == np.float32
        assert (x["labels"] == x["inputs"] + 1000).all()
    assert all((x["inputs"] == y["inputs"]).all() for x, y in zip(ba, bb))
    assert any((x["inputs"] != y["inputs"]).any() for x, y in zip(ba, bc))


def test_each_epoch_is_a_fresh_permutation():
    it = BatchIterator(_dataset(10), 5, seed=3)
    epochs = [sum((_rows(b) for b in _take(it, 2)), []) for _ in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] and it.epoch == 3.0
    assert _rows(next(BatchIterator(_dataset(10), 5, seed=3, shuffle=False))) == [0, 1, 2, 3, 4]


def test_batches_cross_epoch_ends_and_small_datasets():
    it = BatchIterator(_dataset(3), 8, seed=0)  # N < B: a batch spans several epochs
    rows = _rows(next(it))
    assert len(rows) == 8 and sorted(rows[:3]) == [0, 1, 2] and sorted(rows[3:6]) == [0, 1, 2]
    assert it.epoch == pytest.approx(8 / 3)


def test_resume_yields_identical_future_batches():
    ds = _dataset(10)
    it = BatchIterator(ds, 4, seed=7)
    _take(it, 3)  # stop mid-epoch (position 2 of epoch 1)
    state = it.state_dict()
    assert state == {"epoch": 1, "position": 2, "num_samples": 10}
    assert all(type(v) is int for v in state.values())
    future = _take(it, 5)
    resumed = BatchIterator(ds, 4, seed=7)
    resumed.load_state_dict({k: np.int64(v) for k, v in state.items()})  # as restored from a checkpoint
    assert all((x["inputs"] == y["inputs"]).all() for x, y in zip(future, _take(resumed, 5)))


def test_bad_states_and_configs():
    ds = _dataset(10)
    it = BatchIterator(ds, 4, seed=0)
    with pytest.raises(TRMError, match="over 12 samples, but the dataset now has 10"):
        it.load_state_dict({"epoch": 0, "position": 0, "num_samples": 12})
    with pytest.raises(TRMError, match="invalid data-iterator state"):
        it.load_state_dict({"epoch": 0})
    with pytest.raises(TRMError, match="not divisible by the number of shards"):
        BatchIterator(ds, 6, seed=0, num_shards=4)
    with pytest.raises(TRMError, match="shard_index"):
        BatchIterator(ds, 4, seed=0, shard_index=2, num_shards=2)
    with pytest.raises(TRMError, match="empty dataset"):
        BatchIterator(_dataset(0), 4, seed=0)


def test_shards_partition_the_global_batch():
    ds = _dataset(10)
    whole = _take(BatchIterator(ds, 4, seed=5), 4)
    shards = [_take(BatchIterator(ds, 4, seed=5, shard_index=i, num_shards=2), 4) for i in range(2)]
    for k in range(4):
        assert shards[0][k]["inputs"].shape == (2, 4)
        joined = np.concatenate([shards[0][k]["inputs"], shards[1][k]["inputs"]])
        assert (joined == whole[k]["inputs"]).all()


def test_augmented_batches_are_deterministic_valid_and_shard_invariant():
    tok = load_tokenizer("grid")[0]
    p, s = S.generate_sudoku(6, seed=1, difficulty=0.5)
    ds = make_sudoku_dataset(p, s, tok, augment=True)
    it = BatchIterator(ds, 4, seed=2)
    first = _take(it, 2)
    state = it.state_dict()
    future = _take(it, 2)
    again = BatchIterator(ds, 4, seed=2)
    again.load_state_dict(state)
    assert all((x["inputs"] == y["inputs"]).all() and (x["labels"] == y["labels"]).all()
               for x, y in zip(future, _take(again, 2)))
    half = _take(BatchIterator(ds, 4, seed=2, shard_index=1, num_shards=2), 2)
    assert all((h["inputs"] == f["inputs"][2:]).all() for h, f in zip(half, first))
    for batch in first + future:
        for x, y in zip(batch["inputs"], batch["labels"]):
            puzzle, solution = S.text_to_sudoku(tok.decode(x)), S.text_to_sudoku(tok.decode(y))
            assert S.is_valid_solution(solution) and S.matches_givens(puzzle, solution)
    originals = {t["input"] for t in ds.texts}
    assert any(tok.decode(x) not in originals for x in first[0]["inputs"])  # actually transformed


def test_eval_batches_cover_once_with_mask():
    ds = _dataset(10)
    batches = list(eval_batches(ds, 4))
    assert len(batches) == num_eval_batches(10, 4) == 3
    assert all(b["inputs"].shape == (4, 4) and b["labels"].shape == (4, 4) for b in batches)
    last = batches[-1]
    assert last["mask"].tolist() == [True, True, False, False] and last["index"].tolist() == [8, 9, -1, -1]
    assert (last["labels"][2:] == -100).all() and (last["difficulty"][2:] == 0).all()
    seen = np.concatenate([b["index"][b["mask"]] for b in batches])
    assert seen.tolist() == list(range(10))
    assert ds.labels[0, 0] == 1000  # padding did not write into the dataset
    sharded = [list(eval_batches(ds, 4, shard_index=i, num_shards=2)) for i in range(2)]
    idx = sorted(np.concatenate([b["index"][b["mask"]] for sh in sharded for b in sh]).tolist())
    assert idx == list(range(10)) and sharded[1][0]["inputs"].shape == (2, 4)
    assert list(eval_batches(_dataset(0), 4)) == []


def test_batches_carry_puzzle_ids_zeros_when_absent():
    ds = _dataset(10)
    ids = (np.arange(10, dtype=np.int32) * 3) % 7
    with_ids = ArrayDataset(ds.inputs, ds.labels, ds.difficulty, puzzle_ids=ids)
    for batch in _take(BatchIterator(with_ids, 4, seed=1), 4):
        assert batch["puzzle_ids"].dtype == np.int32 and batch["puzzle_ids"].shape == (4,)
        assert (batch["puzzle_ids"] == ids[_rows(batch)]).all()
    for batch in _take(BatchIterator(ds, 4, seed=1), 2):
        assert batch["puzzle_ids"].dtype == np.int32 and (batch["puzzle_ids"] == 0).all()
    tok = load_tokenizer("grid")[0]
    p, s = S.generate_sudoku(4, seed=1, difficulty=0.2)
    aug = make_sudoku_dataset(p, s, tok, augment=True)
    aug = ArrayDataset(aug.inputs, aug.labels, aug.difficulty, aug.texts, aug.augment, puzzle_ids=[5, 6, 7, 8])
    batch = next(BatchIterator(aug, 4, seed=0, shuffle=False))
    assert batch["puzzle_ids"].tolist() == [5, 6, 7, 8]  # augmentation keeps the ids
    last = list(eval_batches(with_ids, 4))[-1]
    assert last["puzzle_ids"].dtype == np.int32 and last["puzzle_ids"].tolist() == [ids[8], ids[9], 0, 0]
    assert all((b["puzzle_ids"] == 0).all() for b in eval_batches(ds, 4))
    sub = with_ids.subset([3, 1])
    assert sub.puzzle_ids.tolist() == [ids[3], ids[1]] and ds.subset([1]).puzzle_ids is None
    with pytest.raises(TRMError, match="puzzle_ids has 3 entries for 10 rows"):
        ArrayDataset(ds.inputs, ds.labels, ds.difficulty, puzzle_ids=[0, 1, 2])
