"""The reference Sudoku solver: plain recursive bitmask backtracking, one puzzle at a time.

It is the solver behind `solve_sudoku_string` and the independent check the tests use on
what the batched solver (`batch_solver`) and the generator produce.
"""

from __future__ import annotations

import logging

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.bitmasks import ALL
from trm_jax.tasks.sudoku.text import sudoku_to_text, text_to_sudoku

logger = logging.getLogger(__name__)


def _solve_recursive(cells, rows, cols, boxes, limit, out):
    """Bitmask backtracking with MRV; counts solutions up to `limit`, records the first."""
    best, best_mask, best_n = -1, 0, 10
    for i in range(81):
        if cells[i]:
            continue
        r, c = divmod(i, 9)
        b = (r // 3) * 3 + c // 3
        mask = ALL & ~(rows[r] | cols[c] | boxes[b])
        n = bin(mask).count("1")
        if n < best_n:
            best, best_mask, best_n = i, mask, n
            if n <= 1:
                break
    if best < 0:  # no empty cell left: a solution
        if not out:
            out.append(list(cells))
        return 1
    if best_n == 0:
        return 0
    r, c = divmod(best, 9)
    b = (r // 3) * 3 + c // 3
    found = 0
    mask = best_mask
    while mask:
        bit = mask & -mask
        mask ^= bit
        cells[best] = bit.bit_length()
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
        found += _solve_recursive(cells, rows, cols, boxes, limit - found, out)
        rows[r] ^= bit
        cols[c] ^= bit
        boxes[b] ^= bit
        cells[best] = 0
        if found >= limit:
            break
    return found


def _solve(puzzle, limit: int):
    cells = [int(v) for v in np.asarray(puzzle).reshape(-1)]
    if len(cells) != 81:
        raise TRMError(f"a Sudoku has 81 cells, got {len(cells)}")
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for i, v in enumerate(cells):
        if v:
            r, c = divmod(i, 9)
            b = (r // 3) * 3 + c // 3
            bit = 1 << (v - 1)
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return 0, None  # the givens already clash
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    out: list = []
    n = _solve_recursive(cells, rows, cols, boxes, limit, out)
    return n, (np.array(out[0], dtype=np.int8) if out else None)


def count_solutions(puzzle, limit: int = 2) -> int:
    """Number of solutions of `puzzle`, counting stops at `limit` (2 answers "is it unique?")."""
    return _solve(puzzle, limit)[0]


def solve_grid(puzzle) -> np.ndarray | None:
    """One solution (int8 [81]) of `puzzle`, or None if it has none."""
    return _solve(puzzle, 1)[1]


def solve_sudoku_string(s: str) -> str:
    """81-character puzzle in, 81-character solved grid out (TRMError if unsolvable)."""
    grid = text_to_sudoku(s)
    n, solution = _solve(grid, 2)
    if n == 0:
        raise TRMError("this Sudoku has no solution: check the givens for a clash or a typo")
    if n > 1:
        logger.warning("this Sudoku has more than one solution; returning one of them")
    return sudoku_to_text(solution)
