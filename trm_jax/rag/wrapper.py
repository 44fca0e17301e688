"""`RAGDatasetWrapper`: puts retrieved context into raw text samples before tokenization.

Used as a task's `datasets(..., samples_transform=wrapper)` during training and as
`wrapper.prepare(query)` at inference, so both see inputs built the same way.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from trm_jax.data.text import prepare_code_input
from trm_jax.errors import TRMError
from trm_jax.rag.retriever import RAGRetriever

logger = logging.getLogger(__name__)


class RAGDatasetWrapper:
    """Fills each sample's "context" with the top-k retrieved texts, joined by `separator`.

    Samples are dicts {"context", "query", "answer"} (context optional) or
    {"input", "output"}. The query text is `sample["query"]` (or `sample["input"]`).

    - {"context", "query", "answer"}: "context" becomes the retrieved text; a non-empty
      context the sample already had is kept in front of it.
    - {"input", "output"}: "input" becomes `prepare_code_input(retrieved, input)`.

    Samples are copied, never modified in place; other keys (e.g. "fact") are kept.
    Calling the wrapper on a list of samples returns the new list, so it plugs in as
    `samples_transform`; `prepare(query)` builds one input at inference the same way.

    Args:
        retriever: Finds the texts.
        top_k: Texts retrieved per sample.
        separator: Joins the retrieved texts (and a context the sample already had).

    Raises:
        TRMError: `top_k` is not a positive integer, or `retriever` is not a `RAGRetriever`.
    """

    def __init__(self, retriever: RAGRetriever, top_k: int = 1, *, separator: str = "\n"):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
            raise TRMError(f"top_k must be a positive integer, got {top_k!r}; set rag.top_k")
        if not isinstance(retriever, RAGRetriever):
            raise TRMError(f"RAGDatasetWrapper needs a RAGRetriever, got {type(retriever).__name__}; "
                           "build one with get_task(config).retriever() or build_rag(config)")
        self.retriever = retriever
        self.top_k = top_k
        self.separator = separator

    @classmethod
    def from_config(cls, retriever: RAGRetriever, config) -> "RAGDatasetWrapper":
        """A wrapper with the `rag.top_k` and `rag.separator` of a config.

        Args:
            retriever: Finds the texts.
            config: A `TRMConfig` or a `RAGConfig`.
        """
        cfg = getattr(config, "rag", config)
        return cls(retriever, cfg.top_k, separator=cfg.separator)

    # ------------------------------------------------------------------ single queries (inference)

    def contexts(self, queries: Sequence[str]) -> list[str]:
        """The joined retrieved context of each query.

        Args:
            queries: The query texts.

        Returns:
            One context string per query.
        """
        results = self.retriever.retrieve_many(list(queries), self.top_k)
        return [self.separator.join(text for text, _ in hits) for hits in results]

    def context(self, query: str) -> str:
        """The joined retrieved context of one query.

        Args:
            query: The query text.

        Returns:
            The context string.
        """
        if not isinstance(query, str):
            raise TRMError(f"query must be a string, got {type(query).__name__}")
        return self.contexts([query])[0]

    def prepare(self, query: str, context: Optional[str] = None) -> str:
        """Model input text for one query at inference: `prepare_code_input(retrieved, query)`.

        Args:
            query: The query text.
            context: Context of the query's own, kept in front of the retrieved text (as for training
                samples); None = none.

        Returns:
            The input text.
        """
        return prepare_code_input(self._merge(context or "", self.context(query)), query)

    def _merge(self, given: str, retrieved: str) -> str:
        if given and retrieved:
            return given + self.separator + retrieved
        return given or retrieved

    # ------------------------------------------------------------------ datasets (training)

    def __call__(self, samples: Sequence[dict]) -> list[dict]:
        samples = list(samples)
        queries = []
        for i, s in enumerate(samples):
            if not isinstance(s, dict):
                raise TRMError(f"sample {i} is a {type(s).__name__}, expected a dict with 'query' or 'input'")
            q = s.get("query", s.get("input"))
            if not isinstance(q, str):
                raise TRMError(f"sample {i} has no string 'query' (or 'input') to retrieve context for; "
                               f"its keys are {sorted(s)}")
            queries.append(q)
        contexts = self.contexts(queries)
        out = []
        for s, ctx in zip(samples, contexts):
            s = dict(s)
            if "query" in s:
                given = s.get("context") or ""
                if not isinstance(given, str):
                    raise TRMError(f"sample context must be a string, got {type(given).__name__}")
                s["context"] = self._merge(given, ctx)
            else:
                s["input"] = prepare_code_input(ctx, s["input"])
            out.append(s)
        logger.debug("added retrieved context (top %d) to %d samples", self.top_k, len(out))
        return out

    def __repr__(self) -> str:
        return f"RAGDatasetWrapper(top_k={self.top_k}, {self.retriever!r})"
