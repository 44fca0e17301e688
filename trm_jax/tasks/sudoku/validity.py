"""Checks of a Sudoku solution against the rules and against its puzzle's givens (`solves`: both, the
Sudoku task's verifier)."""

from __future__ import annotations

import numpy as np

from trm_jax.tasks.sudoku.bitmasks import UNITS


def is_valid_solution(solution) -> bool:
    """True if `solution` is a complete grid with every row, column and box a permutation of 1..9."""
    g = np.asarray(solution).reshape(-1)
    if g.size != 81 or g.min() < 1 or g.max() > 9:
        return False
    return bool((np.sort(g[UNITS], axis=1) == np.arange(1, 10)).all())


def valid_solutions(solutions) -> np.ndarray:
    """Vectorised `is_valid_solution` for int [N,81] complete grids: bool [N]."""
    s = np.asarray(solutions).reshape(-1, 81)
    return (np.sort(s[:, UNITS], axis=2) == np.arange(1, 10, dtype=s.dtype)).all(axis=(1, 2))


def matches_givens(puzzle, solution) -> bool:
    """True if `solution` keeps every given (non-zero cell) of `puzzle`."""
    p = np.asarray(puzzle).reshape(-1)
    return bool((np.asarray(solution).reshape(-1)[p > 0] == p[p > 0]).all())


def solves(puzzle, answer) -> bool:
    """True if `answer` solves `puzzle` (int grids of 81 cells, puzzle 0 = blank): a complete grid of digits
    1-9 obeying the rules (`is_valid_solution`) that keeps every given (`matches_givens`). False, never an
    error, for anything else (wrong sizes, values out of range)."""
    p, a = np.asarray(puzzle).reshape(-1), np.asarray(answer).reshape(-1)
    if p.size != 81 or p.min() < 0 or p.max() > 9:
        return False
    return is_valid_solution(a) and matches_givens(p, a)
