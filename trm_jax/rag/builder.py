"""`build_rag(config)`: load a corpus, embed it, index it; and corpus loading itself.

Corpus sources (`rag.corpus_path`):
- a folder: every `.txt` / `.md` file below it (recursively, sorted by path), each split
  into paragraphs at blank lines; one document per paragraph, metadata
  {"source": relative path, "paragraph": i};
- a single `.txt` / `.md` file: the same, for that file;
- a `.jsonl` file: one JSON object per line with a string "text"; the other fields
  become the document's metadata; blank lines are skipped;
- null: the task's own corpus, which the caller passes (`task_corpus`; `get_task(config).retriever()`
  passes `Task.retrieval_corpus`, the code task's facts).
Whitespace-only documents are dropped and exact duplicates are indexed once.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, Optional

from trm_jax.errors import TRMError
from trm_jax.rag.retriever import RAGRetriever

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl",)
RAG_SUBDIR = "rag"  # where a run directory keeps its store

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TRMError(f"{path} is not UTF-8 text ({e}); convert it to UTF-8 or remove it from the corpus") from None


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, stripped, empty ones dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def _load_text_files(files: list[Path], root: Path) -> tuple[list[str], list[dict]]:
    texts, meta = [], []
    for f in files:
        rel = str(f.relative_to(root)) if f != root else f.name
        for i, para in enumerate(split_paragraphs(_read_text(f))):
            texts.append(para)
            meta.append({"source": rel, "paragraph": i})
    return texts, meta


def _load_jsonl(path: Path) -> tuple[list[str], list[dict]]:
    texts, meta = [], []
    with open(path, encoding="utf-8") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TRMError(f"{path}:{lineno}: not valid JSON ({e.msg}); each line must be one JSON "
                                   'object such as {"text": "..."}') from None
                if not isinstance(obj, dict):
                    raise TRMError(f"{path}:{lineno}: expected a JSON object with a \"text\" field, "
                                   f"got {type(obj).__name__}")
                text = obj.pop("text", None)
                if not isinstance(text, str):
                    raise TRMError(f"{path}:{lineno}: missing or non-string \"text\" field; "
                                   'each line needs {"text": "..."}')
                texts.append(text)
                meta.append({"source": path.name, "line": lineno, **obj})
        except UnicodeDecodeError as e:
            raise TRMError(f"{path} is not UTF-8 text ({e}); convert it to UTF-8") from None
    return texts, meta


def load_corpus(path) -> tuple[list[str], list[dict]]:
    """(texts, metadata) from a folder of .txt/.md files, one such file, or a JSONL file (see module doc)."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise TRMError(f"corpus folder {p} has no .txt or .md files; add some or point rag.corpus_path "
                           "at a JSONL file with a \"text\" field per line")
        texts, meta = _load_text_files(files, p)
    elif p.is_file():
        suffix = p.suffix.lower()
        if suffix in JSONL_SUFFIXES:
            texts, meta = _load_jsonl(p)
        elif suffix in TEXT_SUFFIXES:
            texts, meta = _load_text_files([p], p)
        else:
            raise TRMError(f"corpus file {p} has suffix {p.suffix!r}; use a .jsonl file, a .txt/.md file, "
                           "or a folder of .txt/.md files")
    else:
        raise TRMError(f"corpus not found: {p}; set rag.corpus_path to an existing folder or JSONL file")
    return texts, meta


def _clean(texts: list[str], meta: list[dict]) -> tuple[list[str], list[dict]]:
    seen: set[str] = set()
    out_t, out_m = [], []
    for t, m in zip(texts, meta):
        t = t.strip()
        if not t or t in seen:
            continue
        seen.add(t)
        out_t.append(t)
        out_m.append(m)
    dropped = len(texts) - len(out_t)
    if dropped:
        logger.info("corpus: dropped %d empty or duplicate documents", dropped)
    return out_t, out_m


def build_rag(config, corpus: Optional[list[str]] = None, *,
              task_corpus: Optional[Callable[[], tuple[list[str], list[dict]]]] = None) -> Optional[RAGRetriever]:
    """Build the retriever a config describes and index its corpus.

    Args:
        config: A `TRMConfig` or its `RAGConfig` (`rag` section: embedder, corpus, scores).
        corpus: Texts to index; None = the file or folder `rag.corpus_path` names, else `task_corpus()`.
        task_corpus: Returns the task's own `(texts, metadata)`, called only when neither `corpus` nor
            `rag.corpus_path` is given (`trm_jax.tasks.get_task(config).retriever()` passes it).

    Returns:
        The `RAGRetriever` with the corpus indexed, or None when `rag.enabled` is false.

    Raises:
        TRMError: There is no corpus, a document is not a string, or every document is empty.
    """
    cfg = getattr(config, "rag", config)
    if not cfg.enabled:
        return None
    if corpus is not None:
        texts, meta = list(corpus), [{"source": "corpus", "index": i} for i in range(len(corpus))]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TRMError(f"corpus document {i} is a {type(t).__name__}, not a string")
    elif cfg.corpus_path is not None:
        texts, meta = load_corpus(cfg.corpus_path)
    elif task_corpus is not None:
        texts, meta = task_corpus()
    else:
        raise TRMError("build_rag: rag.corpus_path is null and no corpus was given; set rag.corpus_path, pass "
                       "corpus=[texts], or build the run's retriever with trm_jax.tasks.get_task(config).retriever() "
                       "(the task's own corpus)")
    texts, meta = _clean(texts, meta)
    if not texts:
        raise TRMError(f"the RAG corpus ({cfg.corpus_path or 'task corpus'}) has no non-empty documents; "
                       "add text to it or disable rag")
    retriever = RAGRetriever.from_config(cfg)
    logger.info("RAG: indexing %d documents with %s", len(texts), retriever.embedder.description()["kind"])
    retriever.add_texts(texts, meta)
    return retriever


def load_run_retriever(run_dir, config=None) -> Optional[RAGRetriever]:
    """The retriever saved in `run_dir/rag`, or None for runs trained without RAG.

    Raises TRMError when the config says RAG was enabled but the store is missing.
    """
    path = Path(run_dir) / RAG_SUBDIR
    cfg = getattr(config, "rag", config)
    if not path.exists():
        if cfg is not None and cfg.enabled:
            raise TRMError(f"rag.enabled is true for this run but {path} holds no vector store; the run was saved "
                           "without it: retrain, or rebuild it with build_rag(config).save(run_dir + '/rag')")
        return None
    if cfg is not None and not cfg.enabled:
        return None
    return RAGRetriever.load(os.fspath(path), config)
