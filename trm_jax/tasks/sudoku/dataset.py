"""Sudoku grids as model tokens: the token table, padded grids, `make_sudoku_dataset`, and
`encode_sudoku_string` for inference."""

from __future__ import annotations

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.text import IGNORE_LABEL
from trm_jax.data.tokenizers import GRID_SYMBOLS, grid_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.augment import SudokuTokenAugmenter
from trm_jax.tasks.sudoku.generator import givens_difficulty
from trm_jax.tasks.sudoku.text import grids_to_texts, text_to_sudoku


def sudoku_token_table(tokenizer) -> np.ndarray:
    """int32 [10]: token id of the blank (index 0) and of digits 1..9, via `tokenizer.encode`."""
    table = []
    for ch in GRID_SYMBOLS:
        ids = tokenizer.encode(ch)
        if len(ids) != 1:
            raise TRMError(f"the Sudoku task needs a character-level tokenizer (one token per cell), but "
                           f"{getattr(tokenizer, 'name', tokenizer)!r} encodes {ch!r} as {ids}; "
                           "set data.tokenizer: grid (or char / byte)")
        table.append(ids[0])
    return np.asarray(table, dtype=np.int32)


def _pad_grids(grids: np.ndarray, table: np.ndarray, seq_len: int, fill: int) -> np.ndarray:
    """Token ids of int [N,81] grids, right-padded with `fill` to seq_len: int32 [N, seq_len]."""
    if seq_len < 81:
        raise TRMError(f"Sudoku needs seq_len >= 81 (one token per cell), got {seq_len}; set data.seq_len: 81")
    out = np.full((len(grids), seq_len), fill, dtype=np.int32)
    out[:, :81] = table[grids]
    return out


def encode_sudoku_string(s: str, tokenizer=None, seq_len: int = 81) -> np.ndarray:
    """A puzzle string (81 cells, '.' or '0' for blanks) as model input ids int32 [seq_len], for inference."""
    tok = tokenizer if tokenizer is not None else grid_tokenizer()
    return _pad_grids(text_to_sudoku(s)[None], sudoku_token_table(tok), seq_len, tok.pad_token_id)[0]


def make_sudoku_dataset(puzzles, solutions, tokenizer, seq_len: int = 81, difficulty=None,
                        augment: bool = False, keep_texts: bool = True) -> ArrayDataset:
    """Tokenized Sudoku: input = the 81 cells of the puzzle, label = the full solution.

    There is no end token: every one of the 81 label positions is supervised. Positions
    past 81 (when seq_len > 81) are padding in the input and IGNORE_LABEL in the label.
    `keep_texts=False` skips the per-row text dicts (large precomputed training sets).
    """
    p = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    s = np.asarray(solutions, dtype=np.int8).reshape(-1, 81)
    table = sudoku_token_table(tokenizer)
    n = len(p)
    inputs = _pad_grids(p, table, seq_len, tokenizer.pad_token_id)
    labels = _pad_grids(s, table, seq_len, IGNORE_LABEL)
    diff = givens_difficulty((p > 0).sum(axis=1)) if difficulty is None else difficulty
    texts = ([{"input": a, "output": b} for a, b in zip(grids_to_texts(p), grids_to_texts(s))]
             if keep_texts else None)
    aug = SudokuTokenAugmenter(tuple(int(t) for t in table[1:])) if augment else None
    return ArrayDataset(inputs, labels, np.broadcast_to(np.asarray(diff, np.float32), (n,)).copy(), texts, aug)
