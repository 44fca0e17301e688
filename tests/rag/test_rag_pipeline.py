"""Retriever, dataset wrapper, build_rag corpora and the run-directory round trip (hashing embedder: fast)."""

import json

import numpy as np
import pytest

from trm_jax.config import DataConfig, RAGConfig, TRMConfig
from trm_jax.errors import TRMError
from trm_jax.rag import (RAGDatasetWrapper, RAGRetriever, TextEmbedder, build_rag, load_corpus, load_run_retriever,
                         split_paragraphs)
from trm_jax.tasks import get_task

FACTS = [
    "def scale(x): return x * 3",
    "def shift(x): return x + 7",
    "def square(x): return x * x",
    "The capital of France is Paris.",
]


def _config(tmp_path, **rag):
    return TRMConfig(run_dir=str(tmp_path / "run"), rag=RAGConfig(**{"enabled": True, "embedder": "hashing", **rag}))


@pytest.fixture
def retriever():
    r = RAGRetriever(TextEmbedder("hashing"))
    r.add_texts(FACTS, [{"i": i} for i in range(len(FACTS))])
    return r


def test_retrieve_top_k_with_scores(retriever):
    hits = retriever.retrieve("what does shift(x) return", 2)
    assert hits[0][0] == FACTS[1] and len(hits) == 2
    assert hits[0][1] >= hits[1][1] and all(isinstance(s, float) for _, s in hits)
    assert len(retriever.retrieve("shift", 50)) == len(FACTS)  # k larger than the store
    many = retriever.retrieve_many(["square(x)", "capital of France", "square(x)"], 1)
    assert [m[0][0] for m in many] == [FACTS[2], FACTS[3], FACTS[2]]  # repeated queries answered alike
    assert many[0] is not many[2]  # and as separate lists
    assert retriever.retrieve("", 3) == []  # a query with no features gets no context
    assert retriever.search("scale(x)", 1)[0].metadata == {"i": 0}
    with pytest.raises(TRMError, match="empty"):
        retriever.add_texts(["ok", "   "])
    with pytest.raises(TRMError, match="list of query strings"):
        retriever.retrieve_many("one string", 1)


def test_empty_retriever_and_min_score():
    r = RAGRetriever(TextEmbedder("hashing"))
    assert r.retrieve("anything", 3) == [] and r.retrieve_many(["a", "b"], 2) == [[], []]
    strict = RAGRetriever(TextEmbedder("hashing"), min_score=0.99)
    strict.add_texts(FACTS)
    assert strict.retrieve("totally unrelated words", 3) == []
    assert strict.retrieve(FACTS[0], 3) == [(FACTS[0], pytest.approx(1.0, abs=1e-5))]


def test_wrapper_fills_context_without_mutating_samples(retriever):
    from trm_jax.data.text import prepare_code_input

    samples = [
        {"context": "", "query": "shift(5) = ?", "answer": "12", "fact": FACTS[1]},
        {"query": "square(4) = ?", "answer": "16"},
        {"context": "given note", "query": "scale(2) = ?", "answer": "6"},
        {"input": "capital of France?", "output": "Paris"},
    ]
    before = json.dumps(samples)
    out = RAGDatasetWrapper(retriever, top_k=1)(samples)
    assert json.dumps(samples) == before  # inputs untouched
    assert out[0] == {**samples[0], "context": FACTS[1]}  # other keys ("fact") kept
    assert out[1]["context"] == FACTS[2]
    assert out[2]["context"] == "given note\n" + FACTS[0]  # existing context kept in front
    assert out[3] == {"input": prepare_code_input(FACTS[3], "capital of France?"), "output": "Paris"}

    two = RAGDatasetWrapper(retriever, top_k=2, separator=" | ")(samples[:1])[0]["context"]
    assert two.startswith(FACTS[1] + " | ") and two.count(" | ") == 1


def test_wrapper_inference_prepare_matches_training_input(retriever):
    from trm_jax.data.text import prepare_code_input

    wrapper = RAGDatasetWrapper.from_config(retriever, RAGConfig(top_k=1))
    sample = wrapper([{"query": "shift(5) = ?", "answer": "12"}])[0]
    assert wrapper.prepare("shift(5) = ?") == prepare_code_input(sample["context"], sample["query"])
    assert wrapper.context("shift(5) = ?") == FACTS[1]


def test_wrapper_bad_inputs(retriever):
    with pytest.raises(TRMError, match="top_k"):
        RAGDatasetWrapper(retriever, top_k=0)
    with pytest.raises(TRMError, match="RAGRetriever"):
        RAGDatasetWrapper(object(), top_k=1)
    wrapper = RAGDatasetWrapper(retriever, top_k=1)
    with pytest.raises(TRMError, match="sample 1 has no string 'query'"):
        wrapper([{"query": "a"}, {"answer": "b"}])
    with pytest.raises(TRMError, match="sample 0 is a str"):
        wrapper(["not a dict"])
    assert wrapper([]) == []


def test_split_paragraphs():
    assert split_paragraphs("a\nb\n\n  \n\nc\r\n\r\nd  ") == ["a\nb", "c", "d"]


def test_load_corpus_folder_file_and_jsonl(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "b.md").write_text("# Title\n\npara two\n")
    (tmp_path / "docs" / "sub" / "a.txt").write_text("only paragraph")
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\x00\x01")
    texts, meta = load_corpus(tmp_path / "docs")
    assert texts == ["# Title", "para two", "only paragraph"]
    assert meta == [{"source": "b.md", "paragraph": 0}, {"source": "b.md", "paragraph": 1},
                    {"source": "sub/a.txt", "paragraph": 0}]
    assert load_corpus(tmp_path / "docs" / "b.md")[0] == ["# Title", "para two"]

    jl = tmp_path / "c.jsonl"
    jl.write_text('{"text": "first", "id": 7}\n\n{"text": "second"}\n')
    texts, meta = load_corpus(jl)
    assert texts == ["first", "second"]
    assert meta == [{"source": "c.jsonl", "line": 1, "id": 7}, {"source": "c.jsonl", "line": 3}]


@pytest.mark.parametrize("content, match", [
    ('{"text": "ok"}\n{"text": broken}\n', r"c\.jsonl:2: not valid JSON"),
    ('{"text": "ok"}\n\n["a list"]\n', r"c\.jsonl:3: expected a JSON object"),
    ('{"body": "no text field"}\n', r"c\.jsonl:1: missing or non-string \"text\""),
    ('{"text": 5}\n', r"c\.jsonl:1: missing or non-string"),
])
def test_jsonl_bad_lines_name_file_and_line(tmp_path, content, match):
    (tmp_path / "c.jsonl").write_text(content)
    with pytest.raises(TRMError, match=match):
        load_corpus(tmp_path / "c.jsonl")


def test_load_corpus_errors(tmp_path):
    with pytest.raises(TRMError, match="corpus not found"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TRMError, match="no .txt or .md files"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(TRMError, match="suffix"):
        load_corpus(tmp_path / "x.csv")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(TRMError, match="not UTF-8"):
        load_corpus(tmp_path / "bad.txt")


def test_build_rag_disabled_dedup_and_errors(tmp_path):
    assert build_rag(TRMConfig()) is None
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t}) for t in FACTS + [FACTS[0], "  "]) + "\n")
    r = build_rag(_config(tmp_path, corpus_path=str(jl)))
    assert len(r) == len(FACTS)  # duplicate and blank lines dropped
    assert r.retrieve("shift(x)", 1)[0][0] == FACTS[1]
    assert len(build_rag(RAGConfig(enabled=True, embedder="hashing"), corpus=FACTS)) == len(FACTS)
    with pytest.raises(TRMError, match=r"rag.corpus_path is null and no corpus.*get_task\(config\).retriever"):
        build_rag(TRMConfig(rag=RAGConfig(enabled=True, embedder="hashing")))  # the task's corpus comes from the task
    assert len(get_task(TRMConfig(rag=RAGConfig(enabled=True, embedder="hashing"))).retriever()) == 512  # code facts
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"query": "shift(3)", "answer": "4"}) + "\n")
    with pytest.raises(TRMError, match="no built-in corpus"):  # a text task without a corpus of its own
        get_task(TRMConfig(data=DataConfig(task="jsonl", train_path=str(rows)),
                           rag=RAGConfig(enabled=True, embedder="hashing"))).retriever()
    with pytest.raises(TRMError, match="does not use retrieved context"):  # a grid task: retrieval is an error
        get_task(TRMConfig(data=DataConfig(task="sudoku"), rag=RAGConfig(enabled=True, embedder="hashing")))
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(TRMError, match="no non-empty documents"):
        build_rag(_config(tmp_path, corpus_path=str(tmp_path / "blank.txt")))


def test_run_dir_round_trip(tmp_path):
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps({"text": t}) for t in FACTS) + "\n")
    config = _config(tmp_path, corpus_path=str(jl), hashing_dim=96, top_k=2)
    built = build_rag(config)
    run_dir = tmp_path / "run"
    built.save(run_dir / "rag")
    loaded = load_run_retriever(run_dir, config)
    assert loaded.embedder.description() == built.embedder.description()
    queries = ["shift(3) = ?", "the capital of France", "square(9)"]
    assert loaded.retrieve_many(queries, 2) == built.retrieve_many(queries, 2)
    np.testing.assert_array_equal(loaded.store.vectors, built.store.vectors)
    # The saved embedder wins over a config that asks for another one, so retrieval stays the same.
    other = TRMConfig(rag=RAGConfig(enabled=True, embedder="sentence-transformers", fallback_to_hashing=False))
    assert load_run_retriever(run_dir, other).retrieve_many(queries, 2) == built.retrieve_many(queries, 2)
    # Runs without RAG: nothing to load; RAG enabled but no store: a clear error.
    assert load_run_retriever(tmp_path / "plain_run", TRMConfig()) is None
    assert load_run_retriever(run_dir, TRMConfig()) is None
    with pytest.raises(TRMError, match="holds no vector store"):
        load_run_retriever(tmp_path / "plain_run", config)
    with pytest.raises(TRMError, match="records no embedder"):
        built.store.save(tmp_path / "bare")
        RAGRetriever.load(tmp_path / "bare")
