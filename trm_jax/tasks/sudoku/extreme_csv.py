"""The Sudoku-Extreme CSV format (`source,question,answer,rating`, '.' for blanks): reader and writer."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from trm_jax.tasks.puzzle_csv import read_rows, write_rows
from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.text import sudoku_to_text
from trm_jax.tasks.sudoku.validity import valid_solutions

# A small file in this format (100 generated puzzles, ratings = guesses of the batched solver).
SAMPLE_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sudoku_extreme_sample.csv")


@dataclass
class SudokuCSV:
    puzzles: np.ndarray  # int8 [N,81]
    solutions: np.ndarray  # int8 [N,81]
    ratings: np.ndarray  # float32 [N]
    sources: list


def rating_difficulty(ratings) -> np.ndarray:
    """Map Sudoku-Extreme ratings (solver backtrack counts, 0..~1000) into [0, 1] on a log scale."""
    r = np.maximum(np.asarray(ratings, dtype=np.float32), 0.0)
    return np.clip(np.log2(1.0 + r) / 10.0, 0.0, 1.0).astype(np.float32)


def _grid_bytes(text: str, path: str, line: int, column: str) -> bytes:
    if len(text) != 81:
        raise TRMError(f"{path}:{line}: column '{column}' must have 81 characters, got {len(text)}. "
                       "Use '.' for blanks as in the Sudoku-Extreme CSV format.")
    return text.encode("ascii", errors="replace")


def read_sudoku_csv(path: str, *, validate: bool = True) -> SudokuCSV:
    """Read a Sudoku-Extreme CSV (`source,question,answer,rating`, '.' for blanks).

    With `validate`, every answer must be a valid solution matching its question's givens;
    errors name the file and line.
    """
    qs, ans, ratings, sources, lines = [], [], [], [], []
    for line, source, question, answer, rating in read_rows(path, "Sudoku"):
        qs.append(_grid_bytes(question, path, line, "question"))
        ans.append(_grid_bytes(answer, path, line, "answer"))
        ratings.append(rating)
        sources.append(source)
        lines.append(line)
    if not qs:
        raise TRMError(f"{path}: no puzzles after the header")
    q = np.frombuffer(b"".join(qs), dtype=np.uint8).reshape(-1, 81)
    a = np.frombuffer(b"".join(ans), dtype=np.uint8).reshape(-1, 81)
    # Vectorised parsing: '.' and '0' are blanks, '1'..'9' digits, anything else is an error.
    q_ok = (q == ord(".")) | ((q >= ord("0")) & (q <= ord("9")))
    a_ok = (a >= ord("1")) & (a <= ord("9"))
    _first_bad(~q_ok.all(axis=1), lines, path, "question may only hold '1'-'9' and '.' (or '0') for blanks")
    _first_bad(~a_ok.all(axis=1), lines, path, "answer must be 81 digits '1'-'9'")
    puzzles = np.where(q == ord("."), 0, q.astype(np.int16) - ord("0")).astype(np.int8)
    solutions = (a.astype(np.int16) - ord("0")).astype(np.int8)
    if validate:
        _first_bad(~valid_solutions(solutions), lines, path,
                   "answer is not a valid Sudoku solution (a row, column or box repeats a digit)")
        match = ((puzzles == 0) | (puzzles == solutions)).all(axis=1)
        _first_bad(~match, lines, path, "answer contradicts a given of the question")
    return SudokuCSV(puzzles, solutions, np.asarray(ratings, dtype=np.float32), sources)


def _first_bad(bad: np.ndarray, lines: list, path: str, msg: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TRMError(f"{path}:{lines[i]}: {msg} ({int(bad.sum())} bad row(s) in the file)")


def write_sudoku_csv(path: str, puzzles, solutions, ratings=None, source: str = "trm_jax") -> None:
    """Write puzzles in the Sudoku-Extreme CSV format."""
    puzzles = np.asarray(puzzles).reshape(-1, 81)
    solutions = np.asarray(solutions).reshape(-1, 81)
    ratings = np.zeros(len(puzzles)) if ratings is None else np.asarray(ratings)
    write_rows(path, ((source, sudoku_to_text(p), sudoku_to_text(s), r) for p, s, r in zip(puzzles, solutions, ratings)))
