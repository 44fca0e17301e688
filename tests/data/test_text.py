"""Padding, truncation and sample encoding edge cases."""

import logging

import numpy as np
import pytest

from trm_jax.data.datasets import IGNORE_LABEL, make_text_dataset
from trm_jax.data.text import pad_sequence, prepare_code_input, tokenize_and_pad
from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("char")[0]


def test_pad_sequence_edges(caplog):
    assert pad_sequence([], 3) == [0, 0, 0]
    assert pad_sequence([5, 6, 7], 3) == [5, 6, 7]
    assert pad_sequence([5], 0, warn=False) == []
    assert pad_sequence([1, 2], 4, pad_value=9) == [1, 2, 9, 9]
    with caplog.at_level(logging.WARNING):
        assert pad_sequence([1, 2, 3, 4], 2) == [1, 2]
    assert any("more than seq_len=2" in r.message for r in caplog.records)
    with pytest.raises(TRMError, match="data.truncation"):
        pad_sequence([1, 2, 3], 2, truncation="error")
    with pytest.raises(TRMError, match="'truncate' or 'error'"):
        pad_sequence([1], 2, truncation="cut")


def test_tokenize_and_pad(tok):
    x = tokenize_and_pad(tok, "ab", 5)
    assert x.dtype == np.int32 and x.shape == (5,) and tok.decode(x) == "ab" and list(x[2:]) == [0, 0, 0]
    assert list(tokenize_and_pad(tok, "", 3)) == [0, 0, 0]
    y = tokenize_and_pad(tok, "ab", 4, add_eos=True)
    assert y[2] == tok.eos_token_id
    with pytest.raises(TRMError, match="text 'abcdef' has 6 tokens"):
        tokenize_and_pad(tok, "abcdef", 4, truncation="error")
    # non-ASCII text encodes (byte tokenizer: losslessly)
    byte = load_tokenizer("byte")[0]
    z = tokenize_and_pad(byte, "日本", 8)
    assert byte.decode(z) == "日本"


def test_prepare_code_input():
    assert prepare_code_input("def f(x): return x", "f(1)") == "def f(x): return x\n>>> f(1)"
    assert prepare_code_input("", "f(1)") == "f(1)"
    assert prepare_code_input(None, "f(1)") == "f(1)"
    assert prepare_code_input("c", "q", query_marker=" | ") == "c | q"


def test_text_dataset_labels(tok):
    samples = [{"input": "abc", "output": "cba"}, {"context": "x = 1", "query": "x", "answer": "1", "difficulty": 0.5},
               {"input": "", "output": ""}]
    ds = make_text_dataset(samples, tok, 12)
    assert ds.inputs.shape == ds.labels.shape == (3, 12) and ds.inputs.dtype == np.int32
    assert tok.decode(ds.inputs[0]) == "abc"
    assert list(ds.labels[0, :4]) == tok.encode("cba") + [tok.eos_token_id]
    assert (ds.labels[0, 4:] == IGNORE_LABEL).all()
    assert tok.decode(ds.inputs[1]) == "x = 1\n>>> x"
    assert list(ds.difficulty) == [0.0, 0.5, 0.0]
    # empty input and output: all pad, label is just the end token
    assert (ds.inputs[2] == 0).all() and ds.labels[2, 0] == tok.eos_token_id and (ds.labels[2, 1:] == -100).all()
    assert ds.texts[1]["query"] == "x"


def test_long_context_is_cut_so_the_query_survives(tok, caplog):
    sample = {"context": "y" * 50, "query": "kav(4)", "answer": "7"}
    with caplog.at_level(logging.WARNING):
        ds = make_text_dataset([sample], tok, 20)
    text = tok.decode(ds.inputs[0])
    assert len(text) == 20 and text.endswith("\n>>> kav(4)") and text.startswith("yyy")
    assert any("truncated 1 of 1 inputs" in r.message for r in caplog.records)


def test_truncation_modes(tok, caplog):
    samples = [{"input": "a" * 10, "output": "b" * 10}]
    with caplog.at_level(logging.WARNING):
        ds = make_text_dataset(samples, tok, 6)
    assert tok.decode(ds.inputs[0]) == "a" * 6
    assert ds.labels[0, -1] == tok.eos_token_id and tok.decode(ds.labels[0, :5]) == "b" * 5
    with pytest.raises(TRMError, match=r"sample 0: input 'aaaaaaaaaa' has 10 tokens, more than seq_len=6"):
        make_text_dataset(samples, tok, 6, truncation="error")
    with pytest.raises(TRMError, match="answer 'bbb' \\(\\+ end token\\) has 4 tokens"):
        make_text_dataset([{"input": "a", "output": "bbb"}], tok, 3, truncation="error")


def test_bad_samples_are_reported(tok):
    with pytest.raises(TRMError, match="sample 1: needs string fields"):
        make_text_dataset([{"input": "a", "output": "b"}, {"input": "a"}], tok, 4)
    with pytest.raises(TRMError, match="sample 0: expected a dict"):
        make_text_dataset(["text"], tok, 4)
