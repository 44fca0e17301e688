"""Tokenizers: round trips, save/load, offline fallback, special ids."""

import logging
import os
import time

import pytest

from trm_jax.data.text import decode_prediction
from trm_jax.data.tokenizers import CharTokenizer, is_saved_tokenizer, load_tokenizer, save_tokenizer
from trm_jax.errors import TRMError

TEXTS = ["", "def kav(x): return x+3\n>>> kav(4)", "Tabs\tand  spaces ~!@#$%^&*()", "0123456789"]


def test_char_round_trip_and_ids():
    tok, vocab, pad = load_tokenizer("char")
    assert pad == 0 and tok.eos_token_id not in (pad,) and vocab == tok.vocab_size
    for text in TEXTS:
        ids = tok.encode(text)
        assert len(ids) == len(text) and all(0 < i < vocab for i in ids)
        assert tok.eos_token_id not in ids
        assert tok.decode(ids) == text
    # grid symbols share ids with the grid tokenizer (pad 0, '.' 1, digits 2..10)
    assert tok.encode(".123456789") == list(range(1, 11))


def test_char_non_ascii_maps_to_unk_with_one_warning(caplog):
    tok, _, _ = load_tokenizer("char")
    with caplog.at_level(logging.WARNING):
        ids = tok.encode("héé")
        tok.encode("é")
    assert ids[1] == ids[2] == tok.unk_token_id
    assert tok.decode(ids) == "h\ufffd\ufffd"
    assert sum("not in the 'char' tokenizer" in r.message for r in caplog.records) == 1


def test_grid_tokenizer_has_eleven_tokens():
    tok, vocab, pad = load_tokenizer("grid")
    assert (vocab, pad, tok.eos_token_id) == (11, 0, 0)
    assert tok.encode("0.12") == [1, 1, 2, 3]  # '0' is an alias for the blank
    assert tok.decode(tok.encode("..98")) == "..98"
    with pytest.raises(TRMError, match="not in the 'grid' tokenizer's alphabet"):
        tok.encode("a")


def test_byte_round_trip_non_ascii():
    tok, vocab, pad = load_tokenizer("byte")
    assert vocab == 259 and pad == 0 and tok.eos_token_id == 1
    for text in TEXTS + ["héllo wörld 日本語 ✓"]:
        ids = tok.encode(text)
        assert tok.eos_token_id not in ids and pad not in ids
        assert tok.decode(ids) == text


def test_bpe_train_save_load(tmp_path):
    corpus = ["def kav(x): return x+3", "kav(4)", "héllo 日本"] * 20
    save = str(tmp_path / "tok")
    tok, vocab, pad = load_tokenizer("bpe", corpus=corpus, save_dir=save, vocab_size=300)
    assert os.path.isfile(os.path.join(save, "tokenizer.json")) and is_saved_tokenizer(save)
    assert pad == 0 and tok.eos_token_id == 1 and vocab <= 300
    for text in TEXTS + ["héllo 日本 unseen ✓"]:
        assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("def kav(x): return x+3")) < len("def kav(x): return x+3")  # merges learned
    again, vocab2, pad2 = load_tokenizer(save)
    assert (vocab2, pad2, again.eos_token_id) == (vocab, pad, tok.eos_token_id)
    assert again.encode("kav(4) héllo") == tok.encode("kav(4) héllo")
    # name "bpe" with a saved tokenizer in save_dir reuses it instead of retraining
    reused, _, _ = load_tokenizer("bpe", save_dir=save)
    assert reused.encode("kav(4)") == tok.encode("kav(4)")


def test_bpe_needs_corpus():
    with pytest.raises(TRMError, match="corpus"):
        load_tokenizer("bpe")
    with pytest.raises(TRMError, match="empty corpus"):
        load_tokenizer("bpe", corpus=["", ""])


@pytest.mark.parametrize("name", ["char", "grid", "byte"])
def test_save_and_load_exact(tmp_path, name):
    tok, vocab, pad = load_tokenizer(name)
    save_tokenizer(tok, str(tmp_path))
    again, vocab2, pad2 = load_tokenizer(str(tmp_path))
    assert type(again) is type(tok) and (vocab2, pad2, again.eos_token_id) == (vocab, pad, tok.eos_token_id)
    text = "..12" if name == "grid" else "kav(4)=7 ok"
    assert again.encode(text) == tok.encode(text)


def test_custom_char_alphabet_saved(tmp_path):
    tok = CharTokenizer("abc", eos=True, unk=False, name="abc")
    save_tokenizer(tok, str(tmp_path))
    again, vocab, _ = load_tokenizer(str(tmp_path))
    assert vocab == 5 and again.alphabet == "abc" and again.encode("cab") == [3, 1, 2]


def test_unknown_name_falls_back_without_network(caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        tok, vocab, pad = load_tokenizer("no-such-org/no-such-tokenizer-xyz")
    assert time.perf_counter() - start < 10
    assert isinstance(tok, CharTokenizer) and vocab == CharTokenizer().vocab_size and pad == 0
    assert any("falling back to the character tokenizer" in r.message for r in caplog.records)


def test_broken_directory_falls_back(tmp_path, caplog):
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        tok, _, _ = load_tokenizer(str(tmp_path))
    assert isinstance(tok, CharTokenizer)
    assert any("falling back" in r.message for r in caplog.records)


def test_hf_tokenizer_without_pad_gets_reserved_pad(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(str(tmp_path))
    tok, vocab, pad = load_tokenizer(str(tmp_path))
    assert pad is not None and pad not in tok.encode("a b") and tok.eos_token_id not in tok.encode("a b")
    assert vocab == 5 and pad != tok.eos_token_id
    save_tokenizer(tok, str(tmp_path / "again"))
    again, vocab2, pad2 = load_tokenizer(str(tmp_path / "again"))
    assert (vocab2, pad2, again.eos_token_id) == (vocab, pad, tok.eos_token_id)


def test_decode_prediction_stops_at_end_or_pad():
    tok, _, _ = load_tokenizer("char")
    ids = tok.encode("42") + [tok.eos_token_id] + tok.encode("junk")
    assert decode_prediction(tok, ids) == "42"
    assert decode_prediction(tok, tok.encode("7") + [0] + tok.encode("x")) == "7"
    assert decode_prediction(tok, []) == ""


def test_char_decodes_grid_predictions():
    grid, _, _ = load_tokenizer("grid")
    char, _, _ = load_tokenizer("char")
    text = "..3456789" * 9
    assert char.decode(grid.encode(text)) == text  # same ids for the grid symbols


def test_tokenizer_for_config(tmp_path):
    from trm_jax.config import TRMConfig
    from trm_jax.tasks import get_task

    sudoku = TRMConfig.from_dict({"data": {"task": "sudoku", "seq_len": 81}})
    tok, vocab, _ = get_task(sudoku).tokenizer()
    assert vocab == 11 and tok.name == "grid"
    code = TRMConfig.from_dict({"data": {"tokenizer": "bpe", "num_train": 200, "bpe_vocab_size": 300}})
    save = str(tmp_path / "tok")
    tok, vocab, _ = get_task(code).tokenizer(save_dir=save)
    assert tok.decode(tok.encode("def kav(x): return x+3")) == "def kav(x): return x+3"
    again, vocab2, _ = get_task(code.replace(data=code.data)).tokenizer(save_dir=save)  # resume
    assert vocab2 == vocab and again.encode("kav(4)") == tok.encode("kav(4)")
