"""Tokenizers with one interface: `encode(text) -> list[int]`, `decode(ids) -> str`.

Kinds:
- "char": a fixed character alphabet (printable ASCII); unknown characters map to an
  unk token. Its first ids are laid out like the Sudoku benchmark's (pad 0, '.' 1,
  '1'-'9' 2-10), so a grid encodes to the same ids with "char" and "grid".
- "grid" (alias "sudoku"): the 11-token Sudoku vocabulary (pad, '.', '1'-'9'), the
  paper's num_tokens=11. It has no separate end token: its `eos_token_id` is the pad
  id, since Sudoku labels are the full 81-cell solution and need no end marker.
- "byte": `transformers.ByT5Tokenizer` (UTF-8 bytes, needs no files).
- "bpe": a byte-level BPE trained with `tokenizers` on the user's corpus, saved into
  the run directory.
- a local directory or a hub name already in the local cache: `AutoTokenizer`, offline.

Every tokenizer has a reserved `pad_token_id` and an `eos_token_id` (end of answer).
Any failure to load falls back to the "char" tokenizer with a logged warning.
"""

from __future__ import annotations

import json
import logging
import os
import string
from typing import Iterable

from trm_jax.errors import TRMError

logger = logging.getLogger(__name__)

CHAR_CONFIG_FILE = "char_tokenizer.json"
GRID_SYMBOLS = ".123456789"  # the grid tokenizer's cells: blank, then the digits 1-9 (Sudoku's values 0..9)
# Grid symbols first so grids get the same ids as with the "grid" tokenizer.
CHAR_ALPHABET = GRID_SYMBOLS + "0" + string.ascii_lowercase + string.ascii_uppercase + \
    string.punctuation.replace(".", "") + " \t\n"
UNK_TEXT = "\ufffd"


class CharTokenizer:
    """One id per character: pad = 0, then the alphabet, then eos and unk (when enabled)."""

    kind = "char"

    def __init__(self, alphabet: str = CHAR_ALPHABET, *, eos: bool = True, unk: bool = True,
                 aliases: dict[str, str] | None = None, name: str = "char"):
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise TRMError(f"a character tokenizer needs a non-empty alphabet without repeats, got {alphabet!r}")
        self.alphabet = alphabet
        self.aliases = dict(aliases or {})
        self.name = name
        self.pad_token_id = 0
        self._ids = {ch: i + 1 for i, ch in enumerate(alphabet)}
        for src, dst in self.aliases.items():
            if dst not in self._ids:
                raise TRMError(f"alias {src!r} -> {dst!r}: {dst!r} is not in the alphabet")
            self._ids.setdefault(src, self._ids[dst])
        nxt = len(alphabet) + 1
        self.has_eos = eos
        self.eos_token_id = nxt if eos else self.pad_token_id
        nxt += int(eos)
        self.unk_token_id = nxt if unk else None
        nxt += int(unk)
        self.vocab_size = nxt
        self._chars = {i + 1: ch for i, ch in enumerate(alphabet)}
        self._warned: set[str] = set()

    def encode(self, text: str) -> list[int]:
        ids = self._ids
        try:
            return [ids[ch] for ch in text]
        except KeyError:
            pass
        out = []
        for ch in text:
            i = ids.get(ch)
            if i is None:
                if self.unk_token_id is None:
                    raise TRMError(f"character {ch!r} is not in the {self.name!r} tokenizer's alphabet "
                                   f"{self.alphabet!r}; use only those characters or another tokenizer") from None
                if ch not in self._warned and len(self._warned) < 20:
                    self._warned.add(ch)
                    logger.warning("character %r is not in the %r tokenizer's alphabet; encoded as unknown "
                                   "(use data.tokenizer: byte or bpe for such text)", ch, self.name)
                i = self.unk_token_id
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of `ids`; pad and eos are skipped, unknown ids become U+FFFD."""
        chars = self._chars
        out = []
        for i in ids:
            i = int(i)
            if i == self.pad_token_id or (self.has_eos and i == self.eos_token_id):
                continue
            out.append(chars.get(i, UNK_TEXT))
        return "".join(out)

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        cfg = {"type": "char", "name": self.name, "alphabet": self.alphabet, "eos": self.has_eos,
               "unk": self.unk_token_id is not None, "aliases": self.aliases}
        _atomic_write(os.path.join(directory, CHAR_CONFIG_FILE), json.dumps(cfg, indent=1))

    @classmethod
    def load(cls, directory: str) -> "CharTokenizer":
        path = os.path.join(directory, CHAR_CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
            return cls(cfg["alphabet"], eos=cfg["eos"], unk=cfg["unk"], aliases=cfg.get("aliases"),
                       name=cfg.get("name", "char"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TRMError(f"{path}: not a valid character-tokenizer file ({e}); delete it or re-save the tokenizer")

    def __repr__(self) -> str:
        return f"CharTokenizer(name={self.name!r}, vocab_size={self.vocab_size})"


def grid_tokenizer() -> CharTokenizer:
    """The 11-token Sudoku tokenizer: pad 0, '.' 1 (also for '0'), '1'-'9' 2-10, eos = pad."""
    return CharTokenizer(GRID_SYMBOLS, eos=False, unk=False, aliases={"0": "."}, name="grid")


class HFTokenizer:
    """A `transformers` tokenizer behind the same interface (no special tokens added by encode)."""

    kind = "hf"

    def __init__(self, tokenizer, name: str = "hf"):
        self.hf = tokenizer
        self.name = name
        added = {}
        # pad must be a reserved id; eos marks the end of an answer. Add them if missing
        # (saved with the tokenizer, so a reload gives the same ids).
        if tokenizer.pad_token_id is None:
            added["pad_token"] = "[PAD]"
        if tokenizer.eos_token_id is None and getattr(tokenizer, "sep_token_id", None) is None:
            added["eos_token"] = "[EOS]"
        if added:
            tokenizer.add_special_tokens(added)
            logger.info("tokenizer %s: added special tokens %s", name, added)
        self.pad_token_id = int(tokenizer.pad_token_id)
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        self.eos_token_id = int(eos)
        self.vocab_size = max(len(tokenizer), self.pad_token_id + 1, self.eos_token_id + 1)
        self._special = set(int(i) for i in tokenizer.all_special_ids)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in self._special and 0 <= int(i) < self.vocab_size]
        return self.hf.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        stale = os.path.join(directory, CHAR_CONFIG_FILE)
        if os.path.exists(stale):  # otherwise load_tokenizer(directory) would pick the char tokenizer
            os.remove(stale)
        self.hf.save_pretrained(directory)

    def __repr__(self) -> str:
        return f"HFTokenizer(name={self.name!r}, vocab_size={self.vocab_size})"


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _offline_transformers():
    # Never reach for the network: a missing cache must fail fast, not hang.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers  # heavy (and torch behind it): imported by the tokenizers that need it

    return transformers


def byte_tokenizer() -> HFTokenizer:
    transformers = _offline_transformers()
    return HFTokenizer(transformers.ByT5Tokenizer(extra_ids=0), name="byte")


def train_bpe_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> HFTokenizer:
    """A byte-level BPE (lossless on any UTF-8 text) trained on `corpus`; [PAD]=0, [EOS]=1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # only the "bpe" tokenizer needs it

    texts = [t for t in corpus if t]
    if not texts:
        raise TRMError("cannot train a BPE tokenizer on an empty corpus: give training text, "
                       "or set data.tokenizer: char / byte")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[EOS]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    transformers = _offline_transformers()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", eos_token="[EOS]")
    logger.info("trained a BPE tokenizer with %d tokens on %d texts", len(fast), len(texts))
    return HFTokenizer(fast, name="bpe")


def is_saved_tokenizer(directory: str | None) -> bool:
    """True if `directory` holds a tokenizer written by `save_tokenizer`."""
    if not directory or not os.path.isdir(directory):
        return False
    return any(os.path.isfile(os.path.join(directory, f))
               for f in (CHAR_CONFIG_FILE, "tokenizer.json", "tokenizer_config.json"))


def save_tokenizer(tokenizer, directory: str) -> None:
    """Write `tokenizer` into `directory` so that `load_tokenizer(directory)` restores it exactly."""
    if not hasattr(tokenizer, "save"):
        raise TRMError(f"cannot save {type(tokenizer).__name__}: use a tokenizer from load_tokenizer()")
    tokenizer.save(directory)


def _load_directory(path: str):
    if os.path.isfile(os.path.join(path, CHAR_CONFIG_FILE)):
        return CharTokenizer.load(path)
    transformers = _offline_transformers()
    hf = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return HFTokenizer(hf, name=os.path.basename(os.path.normpath(path)) or path)


def _load_hub(name: str):
    transformers = _offline_transformers()
    hf = transformers.AutoTokenizer.from_pretrained(name, local_files_only=True)
    return HFTokenizer(hf, name=name)


def load_tokenizer(name: str, *, corpus: Iterable[str] | None = None, save_dir: str | None = None,
                   vocab_size: int = 512):
    """The tokenizer `name` gives, with its vocabulary size and pad id.

    Loading never touches the network; if it fails, the "char" tokenizer is used and a warning says why.

    Args:
        name: "char", "grid" (or "sudoku"), "byte", "bpe" (trained on `corpus`), a local tokenizer
            directory (also a run directory written by `save_tokenizer`), or a Hugging Face hub name
            already in the local cache.
        corpus: The texts a "bpe" tokenizer is trained on.
        save_dir: Where a trained "bpe" tokenizer is saved; one already saved there is reused.
        vocab_size: Vocabulary size of a trained "bpe" tokenizer.

    Returns:
        `(tokenizer, vocab_size, pad_token_id)`.

    Raises:
        TRMError: `name` is empty, or "bpe" is asked for with neither a corpus nor a saved tokenizer.
    """
    if not isinstance(name, str) or not name:
        raise TRMError(f"tokenizer name must be a non-empty string, got {name!r}")
    if name == "bpe":
        if is_saved_tokenizer(save_dir):
            tok = _load_directory(save_dir)  # resuming: reuse the BPE trained for this run
        else:
            if corpus is None:
                raise TRMError("the 'bpe' tokenizer is trained on your data: pass corpus=<texts> "
                               "(the trainer does this), or load a saved one by its directory")
            tok = train_bpe_tokenizer(corpus, vocab_size)
            if save_dir:
                save_tokenizer(tok, save_dir)
        return tok, tok.vocab_size, tok.pad_token_id
    builtins = {"char": CharTokenizer, "grid": grid_tokenizer, "sudoku": grid_tokenizer}
    if name in builtins:
        tok = builtins[name]()
    elif name == "byte":
        tok = byte_tokenizer()
    else:
        try:
            tok = _load_directory(name) if os.path.isdir(name) else _load_hub(name)
        except Exception as e:  # noqa: BLE001 - any load failure falls back, as documented
            logger.warning("could not load tokenizer %r (%s: %s); falling back to the character tokenizer. "
                           "Give a local tokenizer directory, a hub name already in the local cache, "
                           "or one of char/grid/byte/bpe.", name, type(e).__name__, str(e).splitlines()[0][:200])
            tok = CharTokenizer()
    return tok, tok.vocab_size, tok.pad_token_id
