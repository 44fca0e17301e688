"""MemoryVectorStore: exact top-k against brute force, ties, persistence, bad inputs."""

import json

import numpy as np
import pytest

from trm_jax.errors import TRMError
from trm_jax.rag.store import MemoryVectorStore


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(db, q, k):
    """Reference top-k in float64: best first, ties by lower index."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    scores = qn.astype(np.float64) @ db.astype(np.float64).T
    idx = np.stack([np.lexsort((np.arange(len(row)), -row))[:k] for row in scores])
    return np.take_along_axis(scores, idx, axis=1), idx


@pytest.fixture
def store_and_data():
    rng = np.random.default_rng(0)
    db = _unit(rng, 300, 16)
    store = MemoryVectorStore(16)
    store.add(db, [f"doc {i}" for i in range(300)], [{"i": i} for i in range(300)])
    return store, db, rng


@pytest.mark.parametrize("k", [1, 7, 299, 300, 1000])
def test_topk_matches_brute_force(store_and_data, k):
    store, db, rng = store_and_data
    q = rng.standard_normal((25, 16)).astype(np.float32)  # not unit: the store normalises queries
    scores, idx = store.topk(q, k)
    ref_s, ref_i = _brute(db, q, min(k, 300))
    assert idx.shape == (25, min(k, 300))
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


@pytest.mark.parametrize("chunk", [4, 16, 128])
@pytest.mark.parametrize("k", [1, 5, 11])
def test_chunk_prefilter_path_is_exact_with_ties(monkeypatch, chunk, k):
    # Few distinct directions over 3001 rows: heavy ties, and a ragged last chunk.
    rng = np.random.default_rng(1)
    base = _unit(rng, 40, 8)
    db = base[rng.integers(0, 40, size=3001)]
    monkeypatch.setattr("trm_jax.rag.store._CHUNK", chunk)
    store = MemoryVectorStore(8)
    store.add(db, [""] * len(db))
    q = rng.standard_normal((9, 8)).astype(np.float32)
    scores, idx = store.topk(q, k)
    # Reference: the full stable sort of the same float32 scores (same matmul shape, so duplicate
    # rows score bit-identically whatever the BLAS kernel), plus float64 brute force for the values.
    full_scores, full_idx = store.topk(q, len(db))
    np.testing.assert_array_equal(idx, full_idx[:, :k])
    np.testing.assert_array_equal(scores, full_scores[:, :k])
    np.testing.assert_allclose(scores, _brute(store.vectors, q, k)[0], atol=1e-5)


def test_search_single_and_many_agree(store_and_data):
    store, _, rng = store_and_data
    q = rng.standard_normal((4, 16)).astype(np.float32)
    many = store.search_many(q, 3)
    for row, qi in zip(many, q):
        single = store.search(qi, 3)
        assert [h.index for h in single] == [h.index for h in row]
        assert single[0].text == f"doc {single[0].index}" and single[0].metadata == {"i": single[0].index}


def test_blocked_scoring_matches_unblocked(store_and_data, monkeypatch):
    store, db, rng = store_and_data
    q = rng.standard_normal((50, 16)).astype(np.float32)
    full = store.topk(q, 5)[1]
    monkeypatch.setattr("trm_jax.rag.store._SCORE_BLOCK_ELEMS", 300 * 7)  # 7 queries per block
    np.testing.assert_array_equal(store.topk(q, 5)[1], full)


@pytest.mark.parametrize("k", [1, 2, 4, 5, 9, 12])
def test_ties_are_ordered_by_insertion_index(k):
    # Three distinct directions, each stored several times: many exact ties, also at the k boundary.
    base = np.eye(4, dtype=np.float32)[:3]
    pattern = [0, 1, 2, 0, 1, 0, 2, 0, 1]
    store = MemoryVectorStore(4)
    store.add(base[pattern], [str(i) for i in range(len(pattern))])
    q = np.array([[1.0, 0.5, 0, 0], [0, 1.0, 0, 0]], dtype=np.float32)
    _, idx = store.topk(q, k)
    ref = _brute(base[pattern], q, min(k, len(pattern)))[1]
    np.testing.assert_array_equal(idx, ref)
    assert list(idx[1]) == [1, 4, 8, 0, 2, 3, 5, 6, 7][:k]  # copies of direction 1 first, then the rest, by index


def test_incremental_add_equals_bulk_add(store_and_data):
    store, db, rng = store_and_data
    inc = MemoryVectorStore(16)
    for start in range(0, 300, 37):  # crosses several capacity doublings
        inc.add(db[start:start + 37], [f"doc {i}" for i in range(start, min(start + 37, 300))])
    assert len(inc) == 300
    np.testing.assert_array_equal(inc.vectors, store.vectors)
    q = rng.standard_normal((5, 16)).astype(np.float32)
    np.testing.assert_array_equal(inc.topk(q, 10)[1], store.topk(q, 10)[1])


def test_add_normalises_and_vectors_are_read_only():
    store = MemoryVectorStore(3)
    store.add(np.array([3.0, 4.0, 0.0]), "one")  # a single vector and a single text are accepted
    np.testing.assert_allclose(store.vectors, [[0.6, 0.8, 0.0]], atol=1e-7)
    assert store.vectors.dtype == np.float32
    with pytest.raises(ValueError):
        store.vectors[0, 0] = 1.0


def test_empty_store_and_k_zero_give_empty_results():
    store = MemoryVectorStore(8)
    assert store.search(np.ones(8), 5) == []
    assert store.search_many(np.ones((3, 8)), 5) == [[], [], []]
    assert store.topk(np.ones((3, 8)), 5)[1].shape == (3, 0)
    store.add(np.ones((2, 8)), ["a", "b"])
    assert store.search(np.ones(8), 0) == []
    assert store.search_many(np.zeros((0, 8)), 3) == []


@pytest.mark.parametrize("make_call, match", [
    (lambda s: s.add(np.ones((2, 5)), ["a", "b"]), "dimension mismatch"),
    (lambda s: s.add(np.array([[np.nan] * 4]), ["a"]), "NaN"),
    (lambda s: s.add(np.array([[np.inf, 0, 0, 0]]), ["a"]), "NaN or infinity"),
    (lambda s: s.add(np.zeros((1, 4)), ["a"]), "all zeros"),
    (lambda s: s.add(np.array([[{"x": 1}] * 4], dtype=object), ["a"]), "numeric array"),
    (lambda s: s.add(np.array([["a"] * 4]), ["a"]), "numeric array"),
    (lambda s: s.add(np.ones((2, 4)), ["a"]), "2 vectors but 1 texts"),
    (lambda s: s.add(np.ones((1, 4)), [3]), "not a string"),
    (lambda s: s.add(np.ones((1, 4)), ["a"], [{"f": object()}]), "JSON"),
    (lambda s: s.add(np.ones((1, 4)), ["a"], [{}, {}]), "metadata"),
    (lambda s: s.search(np.ones(5), 1), r"shape \(m, 4\)"),
    (lambda s: s.search(np.ones((2, 4)), 1), "one query vector"),
    (lambda s: s.search(np.array([np.nan, 0, 0, 0]), 1), "NaN"),
    (lambda s: s.search(np.ones(4), -1), "non-negative"),
    (lambda s: s.search(np.ones(4), 1.5), "non-negative integer"),
])
def test_bad_inputs_raise_trm_error(make_call, match):
    store = MemoryVectorStore(4)
    store.add(np.eye(4), list("abcd"))
    with pytest.raises(TRMError, match=match):
        make_call(store)
    assert len(store) == 4  # a refused add leaves the store unchanged


def test_bad_dim():
    for dim in (0, -3, 2.5, True):
        with pytest.raises(TRMError, match="dim"):
            MemoryVectorStore(dim)


def test_save_load_round_trip(tmp_path, store_and_data):
    store, _, rng = store_and_data
    store.add(_unit(rng, 1, 16), ["ünïcødé ✓ text"], [{"tags": ["x", 1, None], "nested": {"a": 1.5}}])
    store.save(tmp_path / "s", extra={"embedder": {"kind": "hashing", "dim": 16}})
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["store.json", "store.npz"]
    loaded = MemoryVectorStore.load(tmp_path / "s")
    assert loaded.dim == 16 and len(loaded) == 301
    np.testing.assert_array_equal(loaded.vectors, store.vectors)
    assert loaded.texts == store.texts and loaded.metadata == store.metadata
    assert MemoryVectorStore.read_manifest(tmp_path / "s")["extra"] == {"embedder": {"kind": "hashing", "dim": 16}}
    q = rng.standard_normal((6, 16)).astype(np.float32)
    np.testing.assert_array_equal(loaded.topk(q, 9)[1], store.topk(q, 9)[1])
    loaded.add(_unit(rng, 2, 16), ["new1", "new2"])  # a loaded store stays writable
    assert len(loaded) == 303
    empty = MemoryVectorStore(5)
    empty.save(tmp_path / "e")
    assert len(MemoryVectorStore.load(tmp_path / "e")) == 0


def test_load_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(TRMError, match="store.json is missing"):
        MemoryVectorStore.load(tmp_path / "nope")
    store = MemoryVectorStore(4)
    store.add(np.eye(4), list("abcd"))
    d = store.save(tmp_path / "s")

    (d / "store.json").write_text("{not json")
    with pytest.raises(TRMError, match="not valid JSON"):
        MemoryVectorStore.load(d)

    store.save(d)
    manifest = json.loads((d / "store.json").read_text())
    manifest["texts"] = manifest["texts"][:2]
    (d / "store.json").write_text(json.dumps(manifest))
    with pytest.raises(TRMError, match="inconsistent"):
        MemoryVectorStore.load(d)

    store.save(d)
    np.savez(d / "store.npz", vectors=np.ones((4, 4), dtype=np.float64))
    with pytest.raises(TRMError, match="expected float32"):
        MemoryVectorStore.load(d)

    # An object array can only be read through pickle: load must refuse it, not unpickle it.
    np.savez(d / "store.npz", vectors=np.array([None] * 4, dtype=object))
    with pytest.raises(TRMError, match="cannot read vectors"):
        MemoryVectorStore.load(d)

    (d / "store.npz").write_bytes(b"garbage")
    with pytest.raises(TRMError, match="cannot read vectors"):
        MemoryVectorStore.load(d)

    np.savez(d / "store.npz", vectors=np.full((4, 4), 3.0, dtype=np.float32))
    with pytest.raises(TRMError, match="not unit length"):
        MemoryVectorStore.load(d)
