"""Retrieval-augmented context: embedder, NumPy cosine store, retriever, dataset wrapper, build_rag.

Importing this package is cheap: sentence-transformers (and torch) load only when a
sentence-transformers embedder is created.
"""

from trm_jax.rag.builder import RAG_SUBDIR, build_rag, load_corpus, load_run_retriever, split_paragraphs
from trm_jax.rag.embedder import HashingEmbedder, SentenceTransformerEmbedder, TextEmbedder, default_model_path
from trm_jax.rag.retriever import RAGRetriever
from trm_jax.rag.store import MemoryVectorStore, SearchHit
from trm_jax.rag.wrapper import RAGDatasetWrapper

__all__ = [
    "TextEmbedder", "HashingEmbedder", "SentenceTransformerEmbedder", "default_model_path",
    "MemoryVectorStore", "SearchHit", "RAGRetriever", "RAGDatasetWrapper",
    "build_rag", "load_corpus", "load_run_retriever", "split_paragraphs", "RAG_SUBDIR",
]
