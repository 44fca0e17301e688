"""Grid transforms: the 8 symmetries of the square (official dataset/common.py numbering), on grids and on
flattened square token grids, and the online augmentation that applies one per sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_DIHEDRAL = 8
# official dataset/common.py DIHEDRAL_INVERSE: inverse of each transform id
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral_transform(arr: np.ndarray, tid: int) -> np.ndarray:
    """The 8 symmetries of the square on the last two axes, numbered as official dataset/common.py."""
    if tid == 0:
        return arr
    if tid in (1, 2, 3):
        return np.rot90(arr, k=tid, axes=(-2, -1))
    if tid == 4:
        return np.flip(arr, axis=-1)  # fliplr
    if tid == 5:
        return np.flip(arr, axis=-2)  # flipud
    if tid == 6:
        return np.swapaxes(arr, -1, -2)  # transpose
    if tid == 7:
        return np.flip(np.rot90(arr, k=1, axes=(-2, -1)), axis=-1)  # anti-diagonal reflection
    raise ValueError(f"dihedral transform id must be 0..7, got {tid}")


def inverse_dihedral_transform(arr: np.ndarray, tid: int) -> np.ndarray:
    return dihedral_transform(arr, DIHEDRAL_INVERSE[tid])


def dihedral_permutations(size: int) -> np.ndarray:
    """int [8, size*size]: new_grid = grid[perm[t]] applies `dihedral_transform(t)` to a flattened square grid."""
    cells = np.arange(size * size).reshape(size, size)
    return np.stack([dihedral_transform(cells, t).reshape(-1) for t in range(NUM_DIHEDRAL)])


@dataclass(frozen=True)
class DihedralAugmenter:
    """Online augmentation of tokenized square grids (`size` x `size` cells first in each row): one of the
    8 dihedral transforms per sample (identity included), the same on input and label; positions past
    size*size are not moved."""

    size: int

    def __call__(self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        cells = self.size * self.size
        perm = dihedral_permutations(self.size)[rng.integers(0, NUM_DIHEDRAL, len(inputs))]

        def apply(x):
            out = np.array(x, copy=True)
            out[:, :cells] = np.take_along_axis(x[:, :cells], perm, 1)
            return out

        return apply(inputs), apply(labels)
