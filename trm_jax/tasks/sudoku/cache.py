"""Generated Sudoku cached on disk as .npz, keyed by (n, seed, difficulty)."""

from __future__ import annotations

import logging
import os

import numpy as np

from trm_jax.tasks.sudoku.generator import generate_sudoku

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "trm_jax")


def load_or_generate_sudoku(n: int, seed: int, difficulty: float, cache_dir: str | None = None,
                            *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`generate_sudoku` cached on disk as .npz keyed by (n, seed, difficulty)."""
    cache_dir = cache_dir or default_cache_dir()
    path = os.path.join(cache_dir, f"sudoku_v{CACHE_VERSION}_n{n}_s{seed}_d{difficulty:.4f}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                puzzles, solutions = f["puzzles"], f["solutions"]
            if puzzles.shape == (n, 81) and solutions.shape == (n, 81):
                logger.info("loaded %d cached Sudoku puzzles from %s", n, path)
                return puzzles, solutions
        except (OSError, ValueError, KeyError) as e:
            logger.warning("ignoring unreadable Sudoku cache %s (%s); regenerating", path, e)
    puzzles, solutions = generate_sudoku(n, seed, difficulty, progress=progress)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, puzzles=puzzles, solutions=solutions)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs regeneration next time
        logger.warning("could not write Sudoku cache %s: %s", path, e)
    return puzzles, solutions
