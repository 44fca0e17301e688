"""`RAGRetriever`: an embedder plus a vector store; texts in, top-k (text, score) out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.rag.embedder import TextEmbedder
from trm_jax.rag.store import MemoryVectorStore, SearchHit

logger = logging.getLogger(__name__)


class RAGRetriever:
    """Retrieves the stored texts most similar (cosine) to a query text.

    `build_rag(config)` builds and fills one from a config; `RAGRetriever.load(directory)` restores a
    saved one (a run directory's `rag/`).

    Args:
        embedder: Embeds the stored texts and the queries.
        store: The vectors and texts; None = a new, empty store of the embedder's width.
        min_score: Hits scoring below this cosine similarity are dropped.

    Raises:
        TRMError: The store's vector width is not the embedder's.
    """

    def __init__(self, embedder: TextEmbedder, store: Optional[MemoryVectorStore] = None, *,
                 min_score: float = -1.0):
        store = store if store is not None else MemoryVectorStore(embedder.dim)
        if store.dim != embedder.dim:
            raise TRMError(f"embedder gives {embedder.dim}-dim vectors but the store holds {store.dim}-dim ones; "
                           "use the embedder the store was built with")
        self.embedder = embedder
        self.store = store
        self.min_score = float(min_score)

    @classmethod
    def from_config(cls, config) -> "RAGRetriever":
        """An empty retriever with the embedder and `min_score` of a config's `rag` section.

        Args:
            config: A `TRMConfig` or a `RAGConfig`.
        """
        cfg = getattr(config, "rag", config)
        return cls(TextEmbedder.from_config(cfg), min_score=cfg.min_score)

    def __len__(self) -> int:
        return len(self.store)

    def add_texts(self, texts: Sequence[str], metadata: Optional[Sequence[dict]] = None) -> None:
        """Embed and index texts (a progress bar is shown for large corpora).

        Args:
            texts: Non-empty strings.
            metadata: One JSON-able dict per text; None = empty dicts.

        Raises:
            TRMError: A text is empty or not a string, or bad metadata.
        """
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise TRMError(f"document {i} is empty or not a string; drop it before indexing")
        self.store.add(self.embedder.encode(texts), texts, metadata)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[SearchHit]]:
        """The top-k hits of each query text; hits below `min_score` are dropped.

        Args:
            queries: A list of query texts (a text with no features, e.g. "", gets no hits).
            k: Hits per query at most.

        Returns:
            Per query, its hits (index, score, text, metadata), best first.

        Raises:
            TRMError: `queries` is a single string (use `search`).
        """
        if isinstance(queries, str):
            raise TRMError("search_many takes a list of query strings; use search(query, k) for one")
        queries = list(queries)
        if not queries or len(self.store) == 0:
            return [[] for _ in queries]
        # Datasets repeat queries a lot; embedding (the slow part) is done once per distinct text.
        unique = list(dict.fromkeys(queries))
        vecs = self.embedder.encode(unique)
        hits = self.store.search_many(vecs, k)
        # A query with no features (e.g. empty text) has no direction: give it no context
        # rather than the arbitrary first rows.
        empty = np.linalg.norm(vecs, axis=1) == 0
        by_query = {q: [] if e else [h for h in row if h.score >= self.min_score]
                    for q, row, e in zip(unique, hits, empty)}
        return [list(by_query[q]) for q in queries]

    def search(self, query: str, k: int) -> list[SearchHit]:
        """The top-k hits of one query text.

        Args:
            query: The query text.
            k: Hits at most.

        Returns:
            Its hits (index, score, text, metadata), best first.
        """
        if not isinstance(query, str):
            raise TRMError(f"query must be a string, got {type(query).__name__}")
        return self.search_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """The top-k retrieved texts of each query.

        Args:
            queries: A list of query texts.
            k: Texts per query at most.

        Returns:
            Per query, `[(text, score), ...]`, best first.
        """
        return [[(h.text, h.score) for h in row] for row in self.search_many(queries, k)]

    def retrieve(self, query: str, k: int) -> list[tuple[str, float]]:
        """The top-k retrieved texts of one query.

        Args:
            query: The query text.
            k: Texts at most (fewer if the store is smaller).

        Returns:
            `[(text, score), ...]`, best first.
        """
        return [(h.text, h.score) for h in self.search(query, k)]

    # ------------------------------------------------------------------ persistence

    def save(self, directory) -> Path:
        """Write the store and the embedder description (`store.npz` + `store.json`); `load` reads them back.

        Args:
            directory: The folder (created if needed).

        Returns:
            The folder's path.
        """
        return self.store.save(directory, extra={"embedder": self.embedder.description(),
                                                 "min_score": self.min_score})

    @classmethod
    def load(cls, directory, config=None) -> "RAGRetriever":
        """Restore a saved retriever; the embedder is rebuilt from the saved description.

        Args:
            directory: What `save` wrote (a run directory's `rag/`).
            config: A `TRMConfig` or `RAGConfig` supplying runtime settings only (batch size, device); the
                embedder itself always matches the saved vectors. None = batch size 64 on the CPU.

        Returns:
            The `RAGRetriever`.

        Raises:
            TRMError: The store is missing, damaged or records no embedder, or its embedder cannot be rebuilt.
        """
        cfg = getattr(config, "rag", config)
        manifest = MemoryVectorStore.read_manifest(directory)
        desc = manifest.get("extra", {}).get("embedder")
        if desc is None:
            raise TRMError(f"the store at {directory} records no embedder, so queries cannot be embedded the same "
                           "way; save it with RAGRetriever.save or rebuild it with build_rag")
        if cfg is not None and desc.get("kind") != cfg.embedder:
            logger.info("rag.embedder is %r but the saved store was built with %r; using the saved one",
                        cfg.embedder, desc.get("kind"))
        embedder = TextEmbedder.from_description(
            desc, batch_size=cfg.batch_size if cfg is not None else 64,
            device=cfg.device if cfg is not None else "cpu")
        store = MemoryVectorStore.load(directory)
        min_score = manifest.get("extra", {}).get("min_score", -1.0)
        return cls(embedder, store, min_score=float(min_score))

    def __repr__(self) -> str:
        return f"RAGRetriever({len(self.store)} texts, {self.embedder!r})"
