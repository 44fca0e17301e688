"""Sudoku generator: random complete grids, then hole digging that keeps the solution unique."""

from __future__ import annotations

import logging
import time

import numpy as np
from tqdm import tqdm

from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.batch_solver import propagate_singles, search_batch
from trm_jax.tasks.sudoku.bitmasks import ALL, DIGIT_MASK, MASK_DIGIT, POPCOUNT, SET_BITS, grids_to_masks

logger = logging.getLogger(__name__)

# Givens for difficulty 0 and 1. 17 is the proven minimum for a unique puzzle; hole digging
# stops earlier (random minimal puzzles have ~21-26 givens), so difficulty 1 means
# "dig until no clue can be removed".
EASY_GIVENS = 50
HARD_GIVENS = 17


def target_givens(difficulty: float) -> int:
    """The number of givens the generator aims for at `difficulty` in [0, 1]."""
    return int(round(EASY_GIVENS - float(difficulty) * (EASY_GIVENS - HARD_GIVENS)))


def givens_difficulty(givens) -> np.ndarray:
    """Per-puzzle difficulty in [0, 1] from its number of givens (inverse of `target_givens`)."""
    g = np.asarray(givens, dtype=np.float32)
    return np.clip((EASY_GIVENS - g) / (EASY_GIVENS - HARD_GIVENS), 0.0, 1.0).astype(np.float32)


def _random_solutions(n: int, rng: np.random.Generator) -> np.ndarray:
    """n random complete grids: random first row, then MRV cells filled with random candidates.

    No backtracking: an attempt that hits a contradiction is dropped and replaced, which is
    cheaper in lockstep NumPy than a search. The grids are not exactly uniform over all
    Sudoku grids; augmentation and the random digging order make that irrelevant here.
    """
    out = np.zeros((0, 81), dtype=np.int8)
    while len(out) < n:
        m = max(64, int((n - len(out)) * 1.3))
        cand = np.full((m, 81), ALL, dtype=np.uint16)
        cand[:, :9] = DIGIT_MASK[1:][rng.permuted(np.tile(np.arange(9), (m, 1)), axis=1)]
        alive = np.ones(m, dtype=bool)
        done = np.zeros(m, dtype=bool)
        while True:
            idx = np.flatnonzero(alive & ~done)
            if not idx.size:
                break
            c, dead, solved = propagate_singles(cand[idx])
            cand[idx] = c
            alive[idx[dead]] = False
            done[idx[solved]] = True
            open_ = ~dead & ~solved
            idx, c = idx[open_], c[open_]
            if not idx.size:
                continue
            cnt = POPCOUNT[c]
            cell = np.where(cnt > 1, cnt, 10).argmin(axis=1)
            rows = np.arange(len(idx))
            masks = c[rows, cell]
            pick = (rng.random(len(idx)) * cnt[rows, cell]).astype(np.intp)
            cand[idx, cell] = SET_BITS[masks, pick]
        out = np.concatenate([out, MASK_DIGIT[cand[done]]])
    return out[:n]


def _dig(solutions: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Remove givens in a random order while the puzzle keeps a unique solution.

    Removing the given v at cell c keeps uniqueness iff no solution has c != v, so each
    check is a search for a solution of (puzzle without c, c restricted to not-v), which
    is much smaller than counting all solutions.
    """
    n = len(solutions)
    puzzles = solutions.copy()
    givens = np.full(n, 81)
    order = rng.permuted(np.tile(np.arange(81), (n, 1)), axis=1)
    for step in range(81):
        idx = np.flatnonzero(givens > targets)
        if not idx.size:
            break
        cell = order[idx, step]
        value = puzzles[idx, cell]
        trial = puzzles[idx].copy()
        trial[np.arange(len(idx)), cell] = 0
        cand = grids_to_masks(trial)
        cand[np.arange(len(idx)), cell] &= ~DIGIT_MASK[value]
        counts = search_batch(cand, limit=1)[0]
        ok = counts == 0
        puzzles[idx[ok], cell[ok]] = 0
        givens[idx[ok]] -= 1
    return puzzles


def generate_sudoku(n: int, seed: int = 0, difficulty: float = 0.5, *, batch_size: int = 2048,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Generate `n` puzzles with a unique solution: (puzzles int8 [n,81], solutions int8 [n,81]).

    `difficulty` 0 gives ~50 givens, 1 digs until no given can be removed (~21-26 givens).
    Deterministic in (n, seed, difficulty, batch_size).
    """
    if n < 0:
        raise TRMError(f"number of puzzles must be >= 0, got {n}")
    if not 0.0 <= difficulty <= 1.0:
        raise TRMError(f"Sudoku difficulty must be in [0, 1], got {difficulty}")
    rng = np.random.default_rng([int(seed), 0x50D0, int(round(difficulty * 1e6))])
    target = target_givens(difficulty)
    puzzles, solutions = [], []
    t0 = time.perf_counter()
    bar = _progress(n, progress)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        sol = _random_solutions(m, rng)
        puzzles.append(_dig(sol, np.full(m, target), rng))
        solutions.append(sol)
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    if n:
        logger.info("generated %d Sudoku puzzles (difficulty %.2f) in %.1fs", n, difficulty, time.perf_counter() - t0)
    if not puzzles:
        return np.zeros((0, 81), np.int8), np.zeros((0, 81), np.int8)
    return np.concatenate(puzzles), np.concatenate(solutions)


def _progress(total: int, enabled: bool):
    if not enabled or total <= 0:
        return None
    return tqdm(total=total, desc="generating Sudoku", unit="puzzle")
