"""Validity-preserving Sudoku transforms: cell permutations (band/stack and row/column
shuffles, transpose) and digit relabelling, on grids or on tokenized batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def random_cell_permutations(n: int, rng: np.random.Generator) -> np.ndarray:
    """n random validity-preserving cell permutations, int [n,81]: new_grid = grid[perm].

    Composes band and stack shuffles, row shuffles within each band, column shuffles
    within each stack, and an optional transpose (the paper's Sudoku augmentations).
    """
    bands = rng.permuted(np.tile(np.arange(3), (n, 1)), axis=1)
    stacks = rng.permuted(np.tile(np.arange(3), (n, 1)), axis=1)
    in_band = rng.permuted(np.tile(np.arange(3), (n, 3, 1)), axis=2)
    in_stack = rng.permuted(np.tile(np.arange(3), (n, 3, 1)), axis=2)
    rows = (bands[:, :, None] * 3 + np.take_along_axis(in_band, bands[:, :, None], axis=1)).reshape(n, 9)
    cols = (stacks[:, :, None] * 3 + np.take_along_axis(in_stack, stacks[:, :, None], axis=1)).reshape(n, 9)
    perm = rows[:, :, None] * 9 + cols[:, None, :]  # [n,9,9] source cell of each new cell
    transpose = rng.random(n) < 0.5
    perm[transpose] = perm[transpose].transpose(0, 2, 1)
    return perm.reshape(n, 81)


def random_digit_maps(n: int, rng: np.random.Generator) -> np.ndarray:
    """n random digit relabellings, int8 [n,10]: map[0] = 0 (blank stays blank)."""
    maps = np.zeros((n, 10), dtype=np.int8)
    maps[:, 1:] = rng.permuted(np.tile(np.arange(1, 10, dtype=np.int8), (n, 1)), axis=1)
    return maps


def apply_transforms(grids, perms: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """grids int [n,81] with transform i (cell permutation perms[i], digit map maps[i]) applied to row i."""
    g = np.asarray(grids).reshape(-1, 81)
    return maps[np.arange(len(g))[:, None], np.take_along_axis(g, perms, 1)]


def augment_sudoku(puzzles, solutions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random validity-preserving transform per puzzle (the same to its solution)."""
    p = np.asarray(puzzles).reshape(-1, 81)
    s = np.asarray(solutions).reshape(-1, 81)
    perm = random_cell_permutations(len(p), rng)
    maps = random_digit_maps(len(p), rng)
    return apply_transforms(p, perm, maps), apply_transforms(s, perm, maps)


@dataclass(frozen=True)
class SudokuTokenAugmenter:
    """Online augmentation of tokenized Sudoku batches (used by `BatchIterator`).

    Works in token space: `digit_ids[d-1]` is the token of digit d; any other token
    (blank, pad) is left alone. Positions beyond 81 (padding) are not moved.
    """

    digit_ids: tuple[int, ...]

    def __call__(self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        n, length = inputs.shape
        perm = random_cell_permutations(n, rng)
        maps = random_digit_maps(n, rng)
        size = max(max(self.digit_ids), int(inputs.max(initial=0)), int(labels.max(initial=0))) + 1
        ids = np.asarray(self.digit_ids)
        # Per-sample token lookup table: identity, except digit tokens are relabelled.
        table = np.tile(np.arange(size), (n, 1))
        table[:, ids] = ids[maps[:, 1:] - 1]
        rows = np.arange(n)[:, None]

        def apply(x):
            out = x.copy()
            grid = np.take_along_axis(x[:, :81], perm, 1)
            safe = np.where(grid >= 0, grid, 0)  # labels may hold IGNORE_LABEL (< 0): keep it
            out[:, :81] = np.where(grid >= 0, table[rows, safe], grid)
            return out

        return apply(inputs), apply(labels)
