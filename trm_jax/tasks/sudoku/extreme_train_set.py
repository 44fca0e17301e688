"""The official Sudoku-Extreme training-set construction (official dataset/build_sudoku_dataset.py,
README: `--subsample-size 1000 --num-aug 1000`): each training puzzle followed by `num_aug`
validity-preserving transforms of it (digit relabel, optional transpose, band/stack shuffles,
row/column shuffles within each band/stack), precomputed. The test set is left untouched.

The subsample itself is `data.max_train_rows` (a seeded subset of the CSV rows).
"""

from __future__ import annotations

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.augment import apply_transforms, random_cell_permutations, random_digit_maps

_AUG_STREAM = 0x5AE6  # RNG stream of the precomputed augmentations
_CHUNK = 1 << 16  # rows transformed per vectorised pass (bounds the int64 temporaries to ~40 MB)


def with_augmented_copies(puzzles, solutions, num_aug: int, seed: int = 0):
    """(puzzles, solutions, source) with `num_aug` random transforms after each puzzle.

    Row i*(1+num_aug) is puzzle i unchanged and the next `num_aug` rows are its transforms
    (the official builder's order); `source` int64 [N*(1+num_aug)] is the original row of
    each output row. The same transform is applied to a puzzle and its solution, so each
    augmented solution is valid and keeps its puzzle's givens. Deterministic in (inputs,
    num_aug, seed).
    """
    p = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    s = np.asarray(solutions, dtype=np.int8).reshape(-1, 81)
    if len(p) != len(s):
        raise TRMError(f"{len(p)} Sudoku puzzles but {len(s)} solutions")
    if num_aug < 0:
        raise TRMError(f"data.num_aug must be >= 0, got {num_aug}")
    copies = 1 + int(num_aug)
    total = len(p) * copies
    source = np.repeat(np.arange(len(p)), copies)
    out_p = p[source]
    out_s = s[source]
    if num_aug == 0 or total == 0:
        return out_p, out_s, source
    augmented = np.flatnonzero(np.arange(total) % copies != 0)  # every row but the originals
    rng = np.random.default_rng([int(seed), _AUG_STREAM, len(p), int(num_aug)])
    for start in range(0, len(augmented), _CHUNK):
        rows = augmented[start:start + _CHUNK]
        perms = random_cell_permutations(len(rows), rng)
        maps = random_digit_maps(len(rows), rng)
        out_p[rows] = apply_transforms(out_p[rows], perms, maps)
        out_s[rows] = apply_transforms(out_s[rows], perms, maps)
    return out_p, out_s, source
