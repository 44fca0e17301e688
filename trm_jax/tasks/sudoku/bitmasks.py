"""Sudoku grid geometry and 9-bit candidate masks shared by the solvers, generator and CSV reader.

Grids are flat int8 arrays of 81 cells in row-major order, 0 = blank, 1..9 = digits. A
candidate mask has bit d-1 set when digit d is still possible in a cell.
"""

from __future__ import annotations

import numpy as np

ALL = 0x1FF  # 9-bit candidate mask: every digit possible

_ROWS = np.arange(81).reshape(9, 9)
UNITS = np.concatenate([
    _ROWS,
    _ROWS.T,
    _ROWS.reshape(3, 3, 3, 3).transpose(0, 2, 1, 3).reshape(9, 9),
]).astype(np.intp)  # [27, 9]: rows, columns, boxes
CELL_UNITS = np.array(
    [[r, 9 + c, 18 + (r // 3) * 3 + c // 3] for r in range(9) for c in range(9)], dtype=np.intp
)  # [81, 3]
POPCOUNT = np.array([bin(m).count("1") for m in range(512)], dtype=np.int8)
# SET_BITS[m, k] = the k-th set bit of m (as a mask), for expanding branches without Python loops.
SET_BITS = np.zeros((512, 9), dtype=np.uint16)
for _m in range(512):
    _bits = [1 << b for b in range(9) if _m >> b & 1]
    SET_BITS[_m, : len(_bits)] = _bits
# digit (1..9) <-> single-bit mask
DIGIT_MASK = np.array([0] + [1 << (d - 1) for d in range(1, 10)], dtype=np.uint16)
MASK_DIGIT = np.zeros(512, dtype=np.int8)
for _d in range(1, 10):
    MASK_DIGIT[1 << (_d - 1)] = _d


def grids_to_masks(grids: np.ndarray) -> np.ndarray:
    """int [S,81] grids -> uint16 [S,81] candidate masks (givens fixed, blanks all-candidates)."""
    return np.where(grids > 0, DIGIT_MASK[np.clip(grids, 0, 9)], np.uint16(ALL)).astype(np.uint16)
