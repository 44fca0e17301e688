"""Text utilities: padding, truncation, code-task input layout, sample encoding.

Text tasks are same-length sequence-to-sequence: the input is the tokenized text padded
to seq_len, the label is the answer's tokens followed by the end token, then
IGNORE_LABEL (masked out of the loss and of exact-match).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from trm_jax.errors import TRMError

IGNORE_LABEL = -100  # the label of a position the loss and exact-match skip (PyTorch's ignore_index)

logger = logging.getLogger(__name__)

QUERY_MARKER = "\n>>> "  # REPL-style: the context is code, the query an expression after it
TRUNCATION_MODES = ("truncate", "error")


def _check_mode(truncation: str) -> None:
    if truncation not in TRUNCATION_MODES:
        raise TRMError(f"truncation must be 'truncate' or 'error', got {truncation!r}")


def _too_long(what: str, length: int, max_len: int, truncation: str) -> None:
    """Reject (truncation='error') or warn about a sequence longer than `max_len`."""
    msg = f"{what} has {length} tokens, more than seq_len={max_len}"
    if truncation == "error":
        raise TRMError(f"{msg}. Shorten the text, raise data.seq_len, or set data.truncation: truncate")
    logger.warning("%s; truncated (set data.seq_len higher to keep it whole)", msg)


def pad_sequence(sequence: Sequence[int], max_len: int, pad_value: int = 0, *, truncation: str = "truncate",
                 what: str = "sequence", warn: bool = True) -> list[int]:
    """`sequence` right-padded with `pad_value` to exactly `max_len` items.

    Args:
        sequence: Token ids.
        max_len: The length of the result.
        pad_value: The id appended.
        truncation: For a longer sequence: "truncate" cuts it to `max_len`, "error" raises.
        what: How a warning or error names the sequence.
        warn: Log a warning when a sequence is cut.

    Returns:
        A list of exactly `max_len` ids.

    Raises:
        TRMError: The sequence is longer than `max_len` with `truncation="error"`, or a bad `truncation`
            or `max_len`.
    """
    _check_mode(truncation)
    if max_len < 0:
        raise TRMError(f"max_len must be >= 0, got {max_len}")
    seq = list(sequence)
    if len(seq) > max_len:
        if warn or truncation == "error":
            _too_long(what, len(seq), max_len, truncation)
        return seq[:max_len]
    return seq + [pad_value] * (max_len - len(seq))


def tokenize_and_pad(tokenizer, text: str, max_seq_len: int, *, truncation: str = "truncate",
                     add_eos: bool = False, pad_value: int | None = None) -> np.ndarray:
    """Encode `text` with `tokenizer` (optionally + eos) and pad it to `max_seq_len`.

    Args:
        tokenizer: A tokenizer of `load_tokenizer`.
        text: The text.
        max_seq_len: The length of the result.
        truncation: For a longer text: "truncate" (with a warning) or "error".
        add_eos: Append the tokenizer's end-of-sequence id.
        pad_value: The pad id; None = the tokenizer's.

    Returns:
        int32 [max_seq_len] token ids.

    Raises:
        TRMError: `text` is not a string, or it is too long with `truncation="error"`.
    """
    if not isinstance(text, str):
        raise TRMError(f"expected text (str), got {type(text).__name__}")
    ids = tokenizer.encode(text)
    if add_eos:
        ids = ids + [tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if pad_value is None else pad_value
    return np.asarray(pad_sequence(ids, max_seq_len, pad, truncation=truncation, what=f"text {_preview(text)}"),
                      dtype=np.int32)


def prepare_code_input(context: str | None, query: str, query_marker: str = QUERY_MARKER) -> str:
    """The model's input text: `context`, the marker, then `query` (just `query` without context).

    Training samples and `infer` build their inputs with it, so both look the same.

    Args:
        context: Retrieved or given context; None or "" = none.
        query: The query text.
        query_marker: Separates the context from the query.

    Returns:
        The input text.
    """
    if not context:
        return query
    return f"{context}{query_marker}{query}"


def _preview(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


class SampleEncoder:
    """Encodes raw samples into fixed-length (input, label) rows.

    Samples are {"input", "output"} or {"context" (optional), "query", "answer"}. When a
    context+query input is too long, the context is cut from its end so the query always
    survives (retrieved context is ranked best-first). Truncations are counted and
    reported once by `report()` instead of one warning per sample.
    """

    def __init__(self, tokenizer, seq_len: int, truncation: str = "truncate",
                 query_marker: str = QUERY_MARKER):
        _check_mode(truncation)
        if seq_len <= 0:
            raise TRMError(f"seq_len must be > 0, got {seq_len}")
        self.tok = tokenizer
        self.seq_len = seq_len
        self.truncation = truncation
        self.query_marker = query_marker
        self.truncated_inputs = 0
        self.truncated_labels = 0

    def _fit(self, ids: list[int], what: str, where: str) -> tuple[list[int], bool]:
        if len(ids) <= self.seq_len:
            return ids, False
        if self.truncation == "error":
            _too_long(f"{where}: {what}", len(ids), self.seq_len, "error")
        return ids[: self.seq_len], True

    def input_ids(self, sample: dict, where: str = "sample") -> list[int]:
        if "query" in sample:
            context, query = sample.get("context") or "", sample["query"]
            ids = self.tok.encode(prepare_code_input(context, query, self.query_marker))
            if len(ids) > self.seq_len and context and self.truncation == "truncate":
                tail = self.tok.encode(self.query_marker + query)
                room = self.seq_len - len(tail)
                if room > 0:
                    self.truncated_inputs += 1
                    return self.tok.encode(context)[:room] + tail
            text = prepare_code_input(context, query, self.query_marker)
        else:
            text = sample["input"]
            ids = self.tok.encode(text)
        ids, cut = self._fit(ids, f"input {_preview(text)}", where)
        self.truncated_inputs += cut
        return ids

    def label_ids(self, sample: dict, where: str = "sample") -> list[int]:
        answer = sample["answer"] if "query" in sample else sample["output"]
        ids = self.tok.encode(answer) + [self.tok.eos_token_id]
        if len(ids) > self.seq_len:
            if self.truncation == "error":
                _too_long(f"{where}: answer {_preview(answer)} (+ end token)", len(ids), self.seq_len, "error")
            self.truncated_labels += 1
            ids = ids[: self.seq_len - 1] + [self.tok.eos_token_id]  # keep the end marker
        return ids

    def encode(self, sample: dict, where: str = "sample") -> tuple[np.ndarray, np.ndarray]:
        """(input int32 [seq_len], label int32 [seq_len]) for one sample."""
        x = self.input_ids(sample, where)
        y = self.label_ids(sample, where)
        inputs = np.full(self.seq_len, self.tok.pad_token_id, dtype=np.int32)
        inputs[: len(x)] = x
        labels = np.full(self.seq_len, IGNORE_LABEL, dtype=np.int32)
        labels[: len(y)] = y
        return inputs, labels

    def report(self, total: int) -> None:
        if self.truncated_inputs or self.truncated_labels:
            logger.warning("truncated %d of %d inputs and %d answers to seq_len=%d "
                           "(raise data.seq_len, or set data.truncation: error to reject them)",
                           self.truncated_inputs, total, self.truncated_labels, self.seq_len)


def decode_prediction(tokenizer, ids) -> str:
    """Decode predicted token ids up to the first end or pad token."""
    out = []
    stop = {int(tokenizer.pad_token_id), int(tokenizer.eos_token_id)}
    for i in np.asarray(ids).reshape(-1).tolist():
        if i in stop:
            break
        out.append(i)
    return tokenizer.decode(out)
