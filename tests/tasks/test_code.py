"""Code task: answers checked by executing the facts; held-out split; corpus; datasets."""

import numpy as np
import pytest

from trm_jax.config import TRMConfig
from trm_jax.data.text import decode_prediction
from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.tasks.code.samples import code_task_corpus, code_task_facts, generate_code_samples


def _run(fact: str, query: str) -> str:
    """Independent evaluation: execute the fact as Python and evaluate the query."""
    namespace: dict = {}
    exec(fact, {}, namespace)  # noqa: S102 - generated test data, not user input
    return str(eval(query, {}, namespace))  # noqa: S307


def test_answers_match_python_execution():
    for split in ("train", "eval"):
        samples = generate_code_samples(400, seed=1, split=split, difficulty=1.0)
        for s in samples:
            assert _run(s["fact"], s["query"]) == s["answer"], s
            assert s["context"] == ""  # without RAG the input is only the query
            assert s["fact"].split(" ")[1 if s["fact"].startswith("def") else 0].split("(")[0] in s["query"]


def test_held_out_facts_are_never_asked_in_training():
    facts = code_task_facts(seed=0)
    held = {f.fact_id for f in facts if f.held_out}
    assert 0.2 < len(held) / len(facts) < 0.3
    assert {f.level for f in facts if f.held_out} == {0, 1, 2, 3}
    train = generate_code_samples(3000, seed=0, split="train", difficulty=1.0)
    evals = generate_code_samples(500, seed=0, split="eval", difficulty=1.0)
    assert not {s["fact_id"] for s in train} & held
    assert {s["fact_id"] for s in evals} <= held
    names = lambda ss: {s["query"].replace("len(", "")[:3] for s in ss}  # noqa: E731
    assert not names(train) & names(evals)  # held-out names never appear in training queries


def test_corpus_holds_every_needed_fact_once():
    corpus = code_task_corpus(0)
    assert len(corpus) == len(set(corpus)) == 512
    cfg = TRMConfig.from_dict({"seed": 0, "data": {"code_num_facts": 64}})
    assert get_task(cfg).facts() == code_task_corpus(0, 64)
    for s in generate_code_samples(50, seed=0, split="eval", difficulty=0.5):
        assert corpus[s["fact_id"]] == s["fact"]


def test_difficulty_levels_and_determinism():
    easy = generate_code_samples(200, seed=2, difficulty=0.0)
    assert all(s["difficulty"] == 0.0 and "+" in s["fact"] for s in easy)
    mixed = generate_code_samples(400, seed=2, difficulty=0.5)
    assert {s["difficulty"] for s in mixed} == {0.0, 1 / 3, 2 / 3}
    assert generate_code_samples(30, seed=2, difficulty=0.5) == generate_code_samples(30, seed=2, difficulty=0.5)
    assert generate_code_samples(30, seed=3, difficulty=0.5) != generate_code_samples(30, seed=2, difficulty=0.5)
    oracle = generate_code_samples(5, seed=2, context="oracle")
    assert all(s["context"] == s["fact"] for s in oracle)
    with pytest.raises(TRMError, match="split"):
        generate_code_samples(1, split="test")


def test_code_datasets_fit_small_char_model():
    cfg = TRMConfig.from_dict({"data": {"num_train": 300, "num_eval": 40, "seq_len": 48,
                                        "truncation": "error", "code_context": "oracle"}})
    tok, vocab, _ = load_tokenizer("char")
    train, evals = get_task(cfg).datasets(tok, seq_len=48, difficulty=1.0)
    assert train.inputs.shape == (300, 48) and evals.inputs.shape == (40, 48)
    assert train.inputs.max() < vocab and train.labels.max() < vocab
    for i in range(5):
        s = evals.texts[i]
        assert tok.decode(evals.inputs[i]) == f"{s['fact']}\n>>> {s['query']}"
        assert decode_prediction(tok, evals.labels[i]) == s["answer"]
    assert set(np.round(train.difficulty * 3, 4).tolist()) == {0, 1, 2, 3}  # level / 3


def test_samples_transform_fills_context():
    cfg = TRMConfig.from_dict({"data": {"num_train": 20, "num_eval": 8}})
    tok = load_tokenizer("char")[0]

    def oracle_rag(samples):
        return [{**s, "context": s["fact"]} for s in samples]

    train, _ = get_task(cfg).datasets(tok, seq_len=64, difficulty=0.5, samples_transform=oracle_rag)
    assert tok.decode(train.inputs[0]).startswith(train.texts[0]["fact"])
    raw = get_task(cfg).samples("train", 0.5)
    assert [s["query"] for s in raw] == [s["query"] for s in train.texts]
