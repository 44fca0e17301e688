"""In-memory cosine vector store: a NumPy float32 matrix of unit rows, texts and metadata.

Search is exact: one matrix product gives every cosine, `argpartition` picks the
top k, and ties are ordered by insertion index so results are reproducible.
Saved as `store.npz` (the vectors, loaded with `allow_pickle=False`) plus
`store.json` (texts, metadata, dim, and any `extra` such as the embedder
description); no pickle anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from trm_jax.errors import TRMError

logger = logging.getLogger(__name__)

FORMAT = "trm_jax.rag.store"
FORMAT_VERSION = 1
VECTORS_FILE = "store.npz"
MANIFEST_FILE = "store.json"

# Queries are scored in blocks so the (queries x store) score matrix stays near this many floats.
_SCORE_BLOCK_ELEMS = 1 << 24


class SearchHit(NamedTuple):
    index: int  # row in the store (insertion order)
    score: float  # cosine similarity in [-1, 1]
    text: str
    metadata: dict


def _as_float_matrix(x: Any, what: str) -> np.ndarray:
    """Validate `x` as a numeric array and return it as float32 (no object arrays, no pickle)."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TRMError(f"{what} must be a numeric array, got dtype {arr.dtype}; pass float vectors, "
                       "e.g. the output of TextEmbedder.encode")
    return arr.astype(np.float32, copy=False)


class MemoryVectorStore:
    """Exact cosine top-k search over unit vectors kept in one float32 matrix.

    Cosine similarity is one matrix product; top-k by `argpartition`. Saved as `store.npz` (the
    vectors) and `store.json` (texts, metadata), never pickle.

    Args:
        dim: Vector width.

    Raises:
        TRMError: `dim` is not a positive integer.
    """

    def __init__(self, dim: int):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise TRMError(f"vector store dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self._buf = np.zeros((0, self.dim), dtype=np.float32)  # capacity grows geometrically
        self._n = 0
        self._texts: list[str] = []
        self._metadata: list[dict] = []

    # ------------------------------------------------------------------ contents

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        """The (len, dim) float32 unit vectors, read-only."""
        view = self._buf[: self._n]
        view.flags.writeable = False
        return view

    @property
    def texts(self) -> list[str]:
        """The stored texts, in insertion order (a copy)."""
        return list(self._texts)

    @property
    def metadata(self) -> list[dict]:
        """The stored metadata dicts, in insertion order (copies)."""
        return [dict(m) for m in self._metadata]

    def add(self, vectors, texts: Sequence[str], metadata: Optional[Sequence[dict]] = None) -> None:
        """Append vectors with their texts and metadata.

        Vectors are re-normalised to unit length.

        Args:
            vectors: (n, dim) or (dim,) numeric vectors.
            texts: One text per vector (a single string for one vector).
            metadata: One JSON-able dict per vector; None = empty dicts.

        Raises:
            TRMError: Shapes or counts that do not match, a text that is not a string, metadata that is not
                a JSON-able dict, or a zero, NaN or infinite vector.
        """
        arr = _as_float_matrix(vectors, "vectors")
        if arr.ndim == 1:
            arr = arr[None, :]
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if arr.ndim != 2:
            raise TRMError(f"vectors must have shape (n, {self.dim}), got {arr.shape}")
        if arr.shape[1] != self.dim:
            raise TRMError(f"vector dimension mismatch: the store holds {self.dim}-dim vectors, got {arr.shape[1]}; "
                           "embed with the same embedder the store was built with")
        n = arr.shape[0]
        if len(texts) != n:
            raise TRMError(f"got {n} vectors but {len(texts)} texts; pass one text per vector")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TRMError(f"text {i} is a {type(t).__name__}, not a string")
        if metadata is None:
            metadata = [{} for _ in range(n)]
        metadata = list(metadata)
        if len(metadata) != n:
            raise TRMError(f"got {n} vectors but {len(metadata)} metadata entries; pass one dict per vector or None")
        for i, m in enumerate(metadata):
            if not isinstance(m, dict):
                raise TRMError(f"metadata {i} is a {type(m).__name__}, not a dict")
            try:  # checked now so save() cannot fail later
                json.dumps(m, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise TRMError(f"metadata {i} is not JSON-serialisable ({e}); use str/int/float/bool/list/dict values")
        if n == 0:
            return
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TRMError(f"vector {i} (text {texts[i][:60]!r}) contains NaN or infinity; "
                           "check the embedder output before adding it")
        norms = np.linalg.norm(arr, axis=1)
        zero = norms == 0
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise TRMError(f"vector {i} (text {texts[i][:60]!r}) is all zeros, so it has no direction to compare; "
                           "drop empty texts before indexing")
        unit = arr / norms[:, None]
        self._reserve(self._n + n)
        self._buf[self._n: self._n + n] = unit
        self._n += n
        self._texts.extend(texts)
        self._metadata.extend(dict(m) for m in metadata)

    def _reserve(self, need: int) -> None:
        if need <= self._buf.shape[0]:
            return
        cap = max(need, 2 * self._buf.shape[0], 16)
        buf = np.zeros((cap, self.dim), dtype=np.float32)
        buf[: self._n] = self._buf[: self._n]
        self._buf = buf

    # ------------------------------------------------------------------ search

    def _check_queries(self, queries) -> np.ndarray:
        q = _as_float_matrix(queries, "queries")
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise TRMError(f"queries must have shape (m, {self.dim}) to match the store, got {q.shape}; "
                           "embed queries with the embedder the store was built with")
        if not np.isfinite(q).all():
            i = int(np.flatnonzero(~np.isfinite(q).all(axis=1))[0])
            raise TRMError(f"query {i} contains NaN or infinity; check the embedder output")
        return q

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise TRMError(f"k must be a non-negative integer, got {k!r}")
        return int(k)

    def topk(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k for a batch of query vectors.

        Queries need not be unit length: they are normalised here, and an all-zero query scores 0
        against everything (so its results are simply the first rows). Use `search_many` for texts and
        metadata.

        Args:
            queries: (m, dim) query vectors.
            k: Hits per query, >= 0.

        Returns:
            `(scores, indices)`, each (m, min(k, len)), best first; equal scores are ordered by index.

        Raises:
            TRMError: Queries of another width or with NaN or infinity, or a bad `k`.
        """
        q = self._check_queries(queries)
        k = min(self._check_k(k), self._n)
        m = q.shape[0]
        if m == 0 or k == 0:
            return np.zeros((m, k), dtype=np.float32), np.zeros((m, k), dtype=np.int64)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        q = np.divide(q, norms, out=np.zeros_like(q), where=norms > 0)
        db = self._buf[: self._n]
        block = max(1, _SCORE_BLOCK_ELEMS // self._n)
        out_s = np.empty((m, k), dtype=np.float32)
        out_i = np.empty((m, k), dtype=np.int64)
        for start in range(0, m, block):
            scores = q[start: start + block] @ db.T  # (b, n) cosines
            s, i = _topk_rows(scores, k)
            out_s[start: start + block] = s
            out_i[start: start + block] = i
        return out_s, out_i

    def search_many(self, queries, k: int) -> list[list[SearchHit]]:
        """The top-k hits of each query vector.

        Args:
            queries: (m, dim) query vectors.
            k: Hits per query at most.

        Returns:
            Per query, its hits (index, score, text, metadata), best first; [] on an empty store.
        """
        scores, idx = self.topk(queries, k)
        return [[SearchHit(int(j), float(s), self._texts[j], dict(self._metadata[j]))
                 for s, j in zip(srow, irow)] for srow, irow in zip(scores, idx)]

    def search(self, query, k: int) -> list[SearchHit]:
        """The top-k hits of one query vector.

        Args:
            query: A (dim,) vector.
            k: Hits at most.

        Returns:
            Its hits (index, score, text, metadata), best first.
        """
        q = _as_float_matrix(query, "query")
        if q.ndim != 1:
            raise TRMError(f"search takes one query vector of shape ({self.dim},), got {q.shape}; "
                           "use search_many for a batch")
        return self.search_many(q[None, :], k)[0]

    # ------------------------------------------------------------------ persistence

    def save(self, directory, extra: Optional[dict] = None) -> Path:
        """Write `store.npz` + `store.json` into `directory` (created if needed), atomically per file.

        Args:
            directory: The folder.
            extra: JSON-able data stored in the manifest, e.g. the embedder description.

        Returns:
            The folder's path.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "dim": self.dim, "count": self._n,
                    "texts": self._texts, "metadata": self._metadata, "extra": extra or {}}
        try:
            text = json.dumps(manifest, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TRMError(f"store extra data is not JSON-serialisable ({e})") from None
        tmp_npz = d / (VECTORS_FILE + ".tmp.npz")
        tmp_json = d / (MANIFEST_FILE + ".tmp")
        np.savez_compressed(tmp_npz, vectors=self._buf[: self._n])  # hashing embeddings are mostly zeros
        tmp_json.write_text(text, encoding="utf-8")
        os.replace(tmp_npz, d / VECTORS_FILE)
        os.replace(tmp_json, d / MANIFEST_FILE)
        logger.info("saved vector store (%d x %d) to %s", self._n, self.dim, d)
        return d

    @staticmethod
    def read_manifest(directory) -> dict:
        """The parsed, validated `store.json` of a saved store."""
        d = Path(directory)
        path = d / MANIFEST_FILE
        if not path.is_file():
            raise TRMError(f"no vector store at {d}: {MANIFEST_FILE} is missing; build one with "
                           "get_task(config).retriever() and save it with retriever.save(directory)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TRMError(f"{path} is not valid JSON ({e}); the store is corrupt, rebuild it with build_rag") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TRMError(f"{path} is not a trm_jax vector store manifest; rebuild it with build_rag")
        if manifest.get("version") != FORMAT_VERSION:
            raise TRMError(f"{path} has store format version {manifest.get('version')}, this trm_jax reads "
                           f"{FORMAT_VERSION}; rebuild the store with build_rag")
        dim, count = manifest.get("dim"), manifest.get("count")
        texts, meta = manifest.get("texts"), manifest.get("metadata")
        ok = (isinstance(dim, int) and dim > 0 and isinstance(count, int) and count >= 0
              and isinstance(texts, list) and len(texts) == count and all(isinstance(t, str) for t in texts)
              and isinstance(meta, list) and len(meta) == count and all(isinstance(m, dict) for m in meta)
              and isinstance(manifest.get("extra", {}), dict))
        if not ok:
            raise TRMError(f"{path} is inconsistent (dim/count/texts/metadata); the store is corrupt, rebuild it")
        return manifest

    @classmethod
    def load(cls, directory) -> "MemoryVectorStore":
        """The store `save` wrote into `directory`.

        Raises:
            TRMError: A file is missing, corrupt or modified.
        """
        d = Path(directory)
        manifest = cls.read_manifest(d)
        path = d / VECTORS_FILE
        if not path.is_file():
            raise TRMError(f"{path} is missing next to {MANIFEST_FILE}; the store is incomplete, rebuild it")
        try:
            with np.load(path, allow_pickle=False) as npz:
                vectors = npz["vectors"]
        except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
            # ValueError is also what NumPy raises for object arrays under allow_pickle=False.
            raise TRMError(f"cannot read vectors from {path} ({type(e).__name__}: {e}); rebuild the store") from None
        expect = (manifest["count"], manifest["dim"])
        if vectors.dtype != np.float32 or vectors.shape != expect:
            raise TRMError(f"{path} holds {vectors.dtype} {vectors.shape}, expected float32 {expect}; rebuild the store")
        if not np.isfinite(vectors).all():
            raise TRMError(f"{path} contains NaN or infinite vectors; rebuild the store")
        norms = np.linalg.norm(vectors, axis=1)
        if vectors.shape[0] and not np.all(np.abs(norms - 1) < 1e-3):
            raise TRMError(f"{path} contains vectors that are not unit length; the file was modified, rebuild it")
        store = cls(manifest["dim"])
        store._buf = np.ascontiguousarray(vectors)
        store._n = vectors.shape[0]
        store._texts = list(manifest["texts"])
        store._metadata = [dict(m) for m in manifest["metadata"]]
        return store


# Column chunk for the top-k prefilter; small enough that chunk maxima bound the k-th score tightly.
_CHUNK = 128


def _topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-row top-k of a (b, n) score matrix, best first, ties by lower index."""
    b, n = scores.shape
    if k >= n:
        # Full stable sort: argsort of -scores keeps lower indices first among equals.
        idx = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, idx, axis=1), idx
    m = n // _CHUNK
    if m < 2 * k:
        return _topk_rows_partition(scores, k)
    # Prefilter: the k-th largest chunk maximum is <= the k-th largest score (k chunks each
    # hold an element at least that large), so every top-k element, ties included, scores
    # >= it. One cheap pass for the maxima replaces an argpartition over all n columns.
    maxima = scores[:, : m * _CHUNK].reshape(b, m, _CHUNK).max(axis=2)
    if n > m * _CHUNK:
        maxima = np.concatenate([maxima, scores[:, m * _CHUNK:].max(axis=1, keepdims=True)], axis=1)
    thr = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    rows, cols = np.nonzero(scores >= thr[:, None])
    vals = scores[rows, cols]
    order = np.lexsort((cols, -vals, rows))  # by row, then best score, then lower index
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=b))[:-1]))
    pos = starts[:, None] + np.arange(k)  # every row has >= k candidates (see above)
    return vals[pos], cols[pos].astype(np.int64)


def _topk_rows_partition(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by argpartition, for stores too small for the chunk prefilter to pay off."""
    b, n = scores.shape
    # argpartition on ascending scores: the last k columns hold the k largest (ties at the boundary arbitrary).
    part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    sel = np.take_along_axis(scores, part, axis=1)
    # Rows where more elements tie with the k-th score than were selected need the
    # lower-index tie-break enforced explicitly (rare: duplicate documents).
    thr = sel.min(axis=1)
    n_ge = np.count_nonzero(scores >= thr[:, None], axis=1)
    order = np.lexsort((part, -sel), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    for r in np.flatnonzero(n_ge > k):
        cand = np.flatnonzero(scores[r] >= thr[r])
        idx[r] = cand[np.lexsort((cand, -scores[r, cand]))[:k]]
    return np.take_along_axis(scores, idx, axis=1), idx
