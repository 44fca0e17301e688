"""Sudoku: generator, solvers, augmentations, Sudoku-Extreme CSV reader, text I/O.

Grids are flat int8 arrays of 81 cells in row-major order, 0 = blank, 1..9 = digits.
Text form is an 81-character string with '.' for blanks ('0' is accepted on input).

Two solvers live here on purpose:
- `count_solutions` / `solve_grid`: a plain recursive bitmask solver (one puzzle at a
  time). It is the reference used by `solve_sudoku_string` and by the tests.
- `_search_batch`: the same search (MRV branching plus naked/hidden-single
  propagation) vectorised over thousands of puzzles with NumPy bitmasks. The generator
  uses it, because hole-digging needs ~80 uniqueness checks per puzzle and a
  pure-Python loop over 100k puzzles would take hours.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from trm_jax.errors import TRMError

logger = logging.getLogger(__name__)

ALL = 0x1FF  # 9-bit candidate mask
CACHE_VERSION = 1

# Givens for difficulty 0 and 1. 17 is the proven minimum for a unique puzzle; hole digging
# stops earlier (random minimal puzzles have ~21-26 givens), so difficulty 1 means
# "dig until no clue can be removed".
EASY_GIVENS = 50
HARD_GIVENS = 17

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


# ----------------------------------------------------------------------------- text I/O

GRID_SYMBOLS = ".123456789"  # text symbol of each cell value 0..9
_SYMBOL_BYTES = np.frombuffer(GRID_SYMBOLS.encode(), dtype=np.uint8)

_SEPARATORS = set(" \t\r\n|+-")


def text_to_sudoku(s: str) -> np.ndarray:
    """Parse 81 cells ('1'-'9', '.' or '0' for blank) into an int8 [81] grid.

    Spaces, newlines and '|', '+', '-' are ignored so a pretty-printed grid parses too.
    """
    if not isinstance(s, str):
        raise TRMError(f"a Sudoku must be given as a string of 81 cells, got {type(s).__name__}")
    cells = []
    for ch in s:
        if ch in _SEPARATORS:
            continue
        if ch in ".0":
            cells.append(0)
        elif "1" <= ch <= "9":
            cells.append(ord(ch) - 48)
        else:
            raise TRMError(f"invalid Sudoku character {ch!r}: use '1'-'9' for givens and '.' or '0' for blanks")
    if len(cells) != 81:
        raise TRMError(f"a Sudoku has 81 cells, got {len(cells)}: give 81 characters ('.' or '0' for blanks)")
    return np.array(cells, dtype=np.int8)


def sudoku_to_text(grid) -> str:
    """An int grid (81 cells or 9x9, 0 = blank) as an 81-character string with '.' for blanks."""
    g = np.asarray(grid).reshape(-1)
    if g.size != 81 or g.min(initial=0) < 0 or g.max(initial=0) > 9:
        raise TRMError(f"a Sudoku grid has 81 cells with values 0-9, got shape {np.shape(grid)}")
    return "".join("." if v == 0 else chr(48 + int(v)) for v in g)


def grids_to_texts(grids) -> list[str]:
    """Vectorised `sudoku_to_text` for int [N,81] grids."""
    g = np.asarray(grids, dtype=np.int64).reshape(-1, 81)
    blob = _SYMBOL_BYTES[g].tobytes().decode("ascii")
    return [blob[i:i + 81] for i in range(0, len(blob), 81)]


def format_sudoku(grid) -> str:
    """Human-readable 9-line rendering with box separators."""
    s = sudoku_to_text(grid)
    lines = []
    for r in range(9):
        row = s[r * 9:(r + 1) * 9]
        lines.append(" | ".join(" ".join(row[b * 3:(b + 1) * 3]) for b in range(3)))
        if r in (2, 5):
            lines.append("------+-------+------")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- validity

def is_valid_solution(solution) -> bool:
    """True if `solution` is a complete grid with every row, column and box a permutation of 1..9."""
    g = np.asarray(solution).reshape(-1)
    if g.size != 81 or g.min() < 1 or g.max() > 9:
        return False
    return bool((np.sort(g[UNITS], axis=1) == np.arange(1, 10)).all())


def is_consistent(puzzle) -> bool:
    """True if no row, column or box repeats a given digit."""
    g = np.asarray(puzzle).reshape(-1)
    for unit in UNITS:
        vals = g[unit][g[unit] > 0]
        if len(vals) != len(set(vals.tolist())):
            return False
    return True


def matches_givens(puzzle, solution) -> bool:
    p = np.asarray(puzzle).reshape(-1)
    return bool((np.asarray(solution).reshape(-1)[p > 0] == p[p > 0]).all())


# ----------------------------------------------------------------------------- reference solver

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


# ----------------------------------------------------------------------------- batched search

def _grids_to_masks(grids: np.ndarray) -> np.ndarray:
    """int [S,81] grids -> uint16 [S,81] candidate masks (givens fixed, blanks all-candidates)."""
    return np.where(grids > 0, DIGIT_MASK[np.clip(grids, 0, 9)], np.uint16(ALL)).astype(np.uint16)


def _propagate(cand: np.ndarray):
    """Naked and hidden singles to a fixpoint, for every row at once.

    Returns (cand, dead, solved): `dead` marks rows with a contradiction.
    """
    cand = cand.copy()
    dead = np.zeros(len(cand), dtype=bool)
    active = np.arange(len(cand))
    while active.size:
        c = cand[active]
        fixed = c * (POPCOUNT[c] == 1)
        # Naked singles: drop every fixed digit from the other cells of its units. A fixed
        # cell keeps its own digit (`| fixed`); repeated fixed digits are caught after the loop.
        fu_or = np.bitwise_or.reduce(fixed[:, UNITS], axis=2)  # [A,27]
        elim = fu_or[:, CELL_UNITS]
        new = c & (~(elim[:, :, 0] | elim[:, :, 1] | elim[:, :, 2]) | fixed)
        # Hidden singles: digits that have exactly one place left in some unit.
        nu = new[:, UNITS]
        once = nu[:, :, 0].copy()
        twice = np.zeros_like(once)
        for k in range(1, 9):
            twice |= once & nu[:, :, k]
            once |= nu[:, :, k]
        bad = (once != ALL).any(axis=1)  # a digit with no place left in a unit
        exactly = (once & ~twice)[:, CELL_UNITS]
        hidden = new & (exactly[:, :, 0] | exactly[:, :, 1] | exactly[:, :, 2])
        bad |= (POPCOUNT[hidden] > 1).any(axis=1)  # one cell is the only place for two digits
        new = np.where(hidden != 0, hidden, new)
        bad |= (new == 0).any(axis=1)
        changed = (new != c).any(axis=1) & ~bad
        cand[active] = new
        dead[active[bad]] = True
        active = active[changed]
    fixed = cand * (POPCOUNT[cand] == 1)
    fu = fixed[:, UNITS]
    dead |= (POPCOUNT[fu].sum(axis=2, dtype=np.int16)
             != POPCOUNT[np.bitwise_or.reduce(fu, axis=2)]).any(axis=1)  # a digit twice in a unit
    solved = ~dead & (POPCOUNT[cand] == 1).all(axis=1)
    return cand, dead, solved


def _search_batch(cand: np.ndarray, limit: int, max_states: int = 20000):
    """Count solutions (up to `limit`) of every row of candidate masks `cand` [P,81].

    Depth-first over chunks of search states (at most `max_states`) so memory stays bounded.
    Returns (counts int32 [P], first_solution int8 [P,81] (zeros where none),
    guesses int32 [P]: extra branches explored, a backtrack-count-like rating).
    """
    num = len(cand)
    counts = np.zeros(num, dtype=np.int32)
    guesses = np.zeros(num, dtype=np.int32)
    first = np.zeros((num, 81), dtype=np.int8)
    # About two states per puzzle per pass: enough to vectorise, small enough that an
    # under-constrained puzzle (many solutions) dives deep instead of widening level by level.
    chunk = max(256, min(max_states, 2 * num))
    pending = [(cand.astype(np.uint16), np.arange(num))]
    while pending:
        c, pid = pending.pop()
        if len(c) > chunk:
            pending.append((c[:-chunk], pid[:-chunk]))
            c, pid = c[-chunk:], pid[-chunk:]
        keep = counts[pid] < limit  # puzzles already at the limit need no more search
        c, pid = c[keep], pid[keep]
        if not len(c):
            continue
        c, dead, solved = _propagate(c)
        if solved.any():
            sp = pid[solved]
            new_first = sp[counts[sp] == 0]
            first[new_first] = MASK_DIGIT[c[solved][counts[sp] == 0]]
            np.add.at(counts, sp, 1)
        open_ = ~dead & ~solved
        c, pid = c[open_], pid[open_]
        if not len(c):
            continue
        # Branch on the cell with the fewest candidates (MRV).
        cnt = POPCOUNT[c]
        cell = np.where(cnt > 1, cnt, 10).argmin(axis=1)
        rows = np.arange(len(c))
        masks = c[rows, cell]
        nchild = cnt[rows, cell].astype(np.intp)
        np.add.at(guesses, pid, nchild - 1)
        parent = np.repeat(rows, nchild)
        k = np.arange(len(parent)) - np.repeat(np.cumsum(nchild) - nchild, nchild)
        child = c[parent]
        child[np.arange(len(parent)), cell[parent]] = SET_BITS[masks[parent], k]
        pending.append((child, pid[parent]))
    return np.minimum(counts, limit), first, guesses


def count_solutions_batch(puzzles, limit: int = 2) -> np.ndarray:
    """Vectorised `count_solutions` for int [P,81] puzzles."""
    grids = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    return _search_batch(_grids_to_masks(grids), limit)[0]


def solve_batch(puzzles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised solve of int [P,81] puzzles: (solutions int8 [P,81] (zeros where
    unsolvable), solution counts up to 2, ratings = guesses needed to solve and prove uniqueness).
    """
    grids = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    counts, first, guesses = _search_batch(_grids_to_masks(grids), 2)
    return first, counts, guesses


# ----------------------------------------------------------------------------- generator

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
            c, dead, solved = _propagate(cand[idx])
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
        cand = _grids_to_masks(trial)
        cand[np.arange(len(idx)), cell] &= ~DIGIT_MASK[value]
        counts = _search_batch(cand, limit=1)[0]
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
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc="generating Sudoku", unit="puzzle")


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


# ----------------------------------------------------------------------------- augmentation

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


def augment_sudoku(puzzles, solutions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random validity-preserving transform per puzzle (the same to its solution)."""
    p = np.asarray(puzzles).reshape(-1, 81)
    s = np.asarray(solutions).reshape(-1, 81)
    perm = random_cell_permutations(len(p), rng)
    maps = random_digit_maps(len(p), rng)
    rows = np.arange(len(p))[:, None]
    return maps[rows, np.take_along_axis(p, perm, 1)], maps[rows, np.take_along_axis(s, perm, 1)]


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


# ----------------------------------------------------------------------------- CSV reader

CSV_HEADER = ["source", "question", "answer", "rating"]
# A small file in this format (100 generated puzzles, ratings = guesses of the batched solver).
SAMPLE_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples", "sudoku_extreme_sample.csv")


@dataclass
class SudokuCSV:
    puzzles: np.ndarray  # int8 [N,81]
    solutions: np.ndarray  # int8 [N,81]
    ratings: np.ndarray  # float32 [N]
    sources: list


def rating_difficulty(ratings) -> np.ndarray:
    """Map Sudoku-Extreme ratings (solver backtrack counts, 0..~1000) into [0, 1] on a log scale."""
    r = np.maximum(np.asarray(ratings, dtype=np.float32), 0.0)
    return np.clip(np.log2(1.0 + r) / 10.0, 0.0, 1.0).astype(np.float32)


def _grid_bytes(text: str, path: str, line: int, column: str) -> bytes:
    if len(text) != 81:
        raise TRMError(f"{path}:{line}: column '{column}' must have 81 characters, got {len(text)}. "
                       "Use '.' for blanks as in the Sudoku-Extreme CSV format.")
    return text.encode("ascii", errors="replace")


def read_sudoku_csv(path: str, *, validate: bool = True) -> SudokuCSV:
    """Read a Sudoku-Extreme CSV (`source,question,answer,rating`, '.' for blanks).

    With `validate`, every answer must be a valid solution matching its question's givens;
    errors name the file and line.
    """
    if not os.path.isfile(path):
        raise TRMError(f"Sudoku CSV not found: {path}. Set data.train_path / data.eval_path to an existing file.")
    qs, ans, ratings, sources, lines = [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TRMError(f"{path}: the file is empty; expected a header line 'source,question,answer,rating'")
        if [h.strip().lower() for h in header] != CSV_HEADER:
            raise TRMError(f"{path}:1: expected the header 'source,question,answer,rating', got {','.join(header)!r}")
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 4:
                raise TRMError(f"{path}:{line}: expected 4 columns (source,question,answer,rating), got {len(row)}")
            source, question, answer, rating = row
            qs.append(_grid_bytes(question, path, line, "question"))
            ans.append(_grid_bytes(answer, path, line, "answer"))
            try:
                ratings.append(float(rating) if rating.strip() else 0.0)
            except ValueError:
                raise TRMError(f"{path}:{line}: rating must be a number, got {rating!r}") from None
            sources.append(source)
            lines.append(line)
    if not qs:
        raise TRMError(f"{path}: no puzzles after the header")
    q = np.frombuffer(b"".join(qs), dtype=np.uint8).reshape(-1, 81)
    a = np.frombuffer(b"".join(ans), dtype=np.uint8).reshape(-1, 81)
    # Vectorised parsing: '.' and '0' are blanks, '1'..'9' digits, anything else is an error.
    q_ok = (q == ord(".")) | ((q >= ord("0")) & (q <= ord("9")))
    a_ok = (a >= ord("1")) & (a <= ord("9"))
    _first_bad(~q_ok.all(axis=1), lines, path, "question may only hold '1'-'9' and '.' (or '0') for blanks")
    _first_bad(~a_ok.all(axis=1), lines, path, "answer must be 81 digits '1'-'9'")
    puzzles = np.where(q == ord("."), 0, q.astype(np.int16) - ord("0")).astype(np.int8)
    solutions = (a.astype(np.int16) - ord("0")).astype(np.int8)
    if validate:
        valid = (np.sort(solutions[:, UNITS], axis=2) == np.arange(1, 10, dtype=np.int8)).all(axis=(1, 2))
        _first_bad(~valid, lines, path, "answer is not a valid Sudoku solution (a row, column or box repeats a digit)")
        match = ((puzzles == 0) | (puzzles == solutions)).all(axis=1)
        _first_bad(~match, lines, path, "answer contradicts a given of the question")
    return SudokuCSV(puzzles, solutions, np.asarray(ratings, dtype=np.float32), sources)


def _first_bad(bad: np.ndarray, lines: list, path: str, msg: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TRMError(f"{path}:{lines[i]}: {msg} ({int(bad.sum())} bad row(s) in the file)")


def write_sudoku_csv(path: str, puzzles, solutions, ratings=None, source: str = "trm_jax") -> None:
    """Write puzzles in the Sudoku-Extreme CSV format."""
    puzzles = np.asarray(puzzles).reshape(-1, 81)
    solutions = np.asarray(solutions).reshape(-1, 81)
    ratings = np.zeros(len(puzzles)) if ratings is None else np.asarray(ratings)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_HEADER)
        for p, s, r in zip(puzzles, solutions, ratings):
            w.writerow([source, sudoku_to_text(p), sudoku_to_text(s), int(r) if float(r).is_integer() else float(r)])
