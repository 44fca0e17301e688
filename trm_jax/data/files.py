"""User data files: parsed once per file version, and split into train/eval rows by a seeded draw."""

from __future__ import annotations

import functools
import logging
import os
from typing import Callable, Optional

import numpy as np

logger = logging.getLogger(__name__)


def read_cached(reader: Callable, path: str):
    """`reader(path)` parsed once per file version: train and eval may both come from one
    (possibly multi-million-row) file, and curriculum stages rebuild their datasets."""
    return _read_cached(reader, os.path.abspath(path), os.path.getmtime(path))


@functools.lru_cache(maxsize=4)
def _read_cached(reader: Callable, path: str, mtime: float):
    del mtime  # part of the cache key only: an edited file is read again
    return reader(path)


def split_indices(n: int, split: str, *, seed: int, num_eval: int, max_rows: Optional[int],
                  has_eval_file: bool) -> np.ndarray:
    """Rows of a file with `n` rows that belong to `split` ("train" or "eval"): all of them when the
    split has its own file, else a seeded held-out slice of min(num_eval, n // 10) rows for eval and
    the rest for train; then a seeded subset of at most `max_rows` rows."""
    rng = np.random.default_rng([int(seed), 0xF11E, n])
    if has_eval_file:
        idx = np.arange(n)
    else:
        perm = rng.permutation(n)
        n_eval = min(num_eval, n // 10)
        if split == "eval" and n_eval == 0 and num_eval > 0:
            logger.warning("data.eval_path is not set and the training file is too small to hold out rows; "
                           "the eval set is empty")
        idx = np.sort(perm[:n_eval] if split == "eval" else perm[n_eval:])
        if split == "eval" and n_eval:
            logger.info("data.eval_path is not set: holding out %d of %d training rows for eval", n_eval, n)
    if max_rows is not None and len(idx) > max_rows:
        idx = np.sort(rng.choice(idx, size=max_rows, replace=False))
    return idx
