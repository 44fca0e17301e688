"""ARC grid <-> token encoding (official build_arc_dataset.py recipe).

Canvas 30x30 flattened to 900 tokens: pad 0, end-of-grid 1 (the row right below the grid and the column
right after it, not their corner), colours 0..9 as tokens 2..11; vocabulary 12. All functions work on a
leading batch axis so a task's augmentations are encoded in one NumPy call.
"""

from __future__ import annotations

import hashlib

import numpy as np

from trm_jax.tasks.arc.sources import ARC_MAX_GRID_SIZE

PAD_TOKEN = 0
EOS_TOKEN = 1
COLOUR_OFFSET = 2
ARC_VOCAB_SIZE = 12  # PAD + EOS + colours 0..9 (official vocab_size = 10 + 2)
ARC_SEQ_LEN = ARC_MAX_GRID_SIZE * ARC_MAX_GRID_SIZE  # 900


def encode_grids(grids: np.ndarray, row_offsets=None, col_offsets=None) -> np.ndarray:
    """grids uint8 [M, h, w] (colours 0..9, one shape) -> tokens uint8 [M, 900] placed at the offsets."""
    grids = np.asarray(grids)
    m, h, w = grids.shape
    size = ARC_MAX_GRID_SIZE
    pr = np.zeros(m, np.int64) if row_offsets is None else np.asarray(row_offsets, np.int64)
    pc = np.zeros(m, np.int64) if col_offsets is None else np.asarray(col_offsets, np.int64)
    if np.any(pr + h > size) or np.any(pc + w > size) or np.any(pr < 0) or np.any(pc < 0):
        raise ValueError("grid placement falls outside the 30x30 canvas")
    canvas = np.zeros((m, size, size), np.uint8)
    idx = np.arange(m)
    rows = pr[:, None, None] + np.arange(h)[None, :, None]
    cols = pc[:, None, None] + np.arange(w)[None, None, :]
    canvas[idx[:, None, None], rows, cols] = grids.astype(np.uint8) + COLOUR_OFFSET
    # end-of-grid row below the grid (columns pc..pc+w-1) and column right of it (rows pr..pr+h-1)
    eos_row = pr + h
    sel = eos_row < size
    if sel.any():
        canvas[idx[sel][:, None], eos_row[sel][:, None], pc[sel][:, None] + np.arange(w)[None, :]] = EOS_TOKEN
    eos_col = pc + w
    sel = eos_col < size
    if sel.any():
        canvas[idx[sel][:, None], pr[sel][:, None] + np.arange(h)[None, :], eos_col[sel][:, None]] = EOS_TOKEN
    return canvas.reshape(m, ARC_SEQ_LEN)


def crop_sizes(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Official evaluators/arc.py _crop, vectorized: the largest top-left rectangle of colour tokens.

    tokens [M, 900] -> (rows [M], cols [M]); (0, 0) when the first token is not a colour.
    """
    g = np.asarray(tokens).reshape(-1, ARC_MAX_GRID_SIZE, ARC_MAX_GRID_SIZE)
    valid = (g >= COLOUR_OFFSET) & (g < COLOUR_OFFSET + 10)
    # colour run from column 0 in each row, then the running minimum down the rows
    run = np.where(valid.all(-1), ARC_MAX_GRID_SIZE, np.argmin(valid, axis=-1))
    width = np.minimum.accumulate(run, axis=-1)
    area = width * np.arange(1, ARC_MAX_GRID_SIZE + 1)[None, :]
    best = np.argmax(area, axis=-1)  # first maximum, as the official strict ">" scan
    best_area = np.take_along_axis(area, best[:, None], -1)[:, 0]
    rows = np.where(best_area > 0, best + 1, 0)
    cols = np.where(best_area > 0, np.take_along_axis(width, best[:, None], -1)[:, 0], 0)
    return rows, cols


def decode_grid(tokens: np.ndarray) -> np.ndarray:
    """One token row [900] -> colour grid uint8 [h, w] cropped at the end-of-grid marker."""
    rows, cols = crop_sizes(np.asarray(tokens)[None])
    g = np.asarray(tokens).reshape(ARC_MAX_GRID_SIZE, ARC_MAX_GRID_SIZE)
    return (g[: rows[0], : cols[0]] - COLOUR_OFFSET).astype(np.uint8)


def grid_hash(grid: np.ndarray) -> str:
    """Content hash of a colour grid (shape + cells), as official build_arc_dataset.py grid_hash."""
    grid = np.ascontiguousarray(grid, dtype=np.uint8)
    return hashlib.sha256(bytes(grid.shape) + grid.tobytes()).hexdigest()
