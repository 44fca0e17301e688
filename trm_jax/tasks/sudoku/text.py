"""Sudoku text form: an 81-character string, '.' for blanks ('0' is accepted on input)."""

from __future__ import annotations

import numpy as np

from trm_jax.data.tokenizers import GRID_SYMBOLS  # text symbol of each cell value 0..9
from trm_jax.errors import TRMError

_SYMBOL_BYTES = np.frombuffer(GRID_SYMBOLS.encode(), dtype=np.uint8)

_SEPARATORS = set(" \t\r\n|+-")


def text_to_sudoku(s: str) -> np.ndarray:
    """Parse 81 cells ('1'-'9', '.' or '0' for blank) into an int8 [81] grid.

    Spaces, newlines and '|', '+', '-' are ignored so a pretty-printed grid parses too.
    """
    if not isinstance(s, str):
        raise TRMError(f"a Sudoku must be given as a string of 81 cells, got {type(s).__name__}")
    cells = []
    for ch in s:
        if ch in _SEPARATORS:
            continue
        if ch in ".0":
            cells.append(0)
        elif "1" <= ch <= "9":
            cells.append(ord(ch) - 48)
        else:
            raise TRMError(f"invalid Sudoku character {ch!r}: use '1'-'9' for givens and '.' or '0' for blanks")
    if len(cells) != 81:
        raise TRMError(f"a Sudoku has 81 cells, got {len(cells)}: give 81 characters ('.' or '0' for blanks)")
    return np.array(cells, dtype=np.int8)


def sudoku_to_text(grid) -> str:
    """An int grid (81 cells or 9x9, 0 = blank) as an 81-character string with '.' for blanks."""
    g = np.asarray(grid).reshape(-1)
    if g.size != 81 or g.min(initial=0) < 0 or g.max(initial=0) > 9:
        raise TRMError(f"a Sudoku grid has 81 cells with values 0-9, got shape {np.shape(grid)}")
    return "".join("." if v == 0 else chr(48 + int(v)) for v in g)


def grids_to_texts(grids) -> list[str]:
    """Vectorised `sudoku_to_text` for int [N,81] grids."""
    g = np.asarray(grids, dtype=np.int64).reshape(-1, 81)
    blob = _SYMBOL_BYTES[g].tobytes().decode("ascii")
    return [blob[i:i + 81] for i in range(0, len(blob), 81)]


def format_sudoku(grid) -> str:
    """Human-readable 9-line rendering with box separators."""
    s = sudoku_to_text(grid)
    lines = []
    for r in range(9):
        row = s[r * 9:(r + 1) * 9]
        lines.append(" | ".join(" ".join(row[b * 3:(b + 1) * 3]) for b in range(3)))
        if r in (2, 5):
            lines.append("------+-------+------")
    return "\n".join(lines)
