"""The batched Sudoku search: MRV branching plus naked/hidden-single propagation, vectorised
over thousands of puzzles with NumPy bitmasks.

The generator uses it because hole-digging needs ~80 uniqueness checks per puzzle and a
pure-Python loop over 100k puzzles would take hours. The reference solver (`solver`) does
the same search one puzzle at a time and checks this one in the tests.
"""

from __future__ import annotations

import numpy as np

from trm_jax.tasks.sudoku.bitmasks import ALL, CELL_UNITS, MASK_DIGIT, POPCOUNT, SET_BITS, UNITS, grids_to_masks


def propagate_singles(cand: np.ndarray):
    """Naked and hidden singles to a fixpoint, for every row of candidate masks at once.

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


def search_batch(cand: np.ndarray, limit: int, max_states: int = 20000):
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
        c, dead, solved = propagate_singles(c)
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
    return search_batch(grids_to_masks(grids), limit)[0]


def solve_batch(puzzles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised solve of int [P,81] puzzles: (solutions int8 [P,81] (zeros where
    unsolvable), solution counts up to 2, ratings = guesses needed to solve and prove uniqueness).
    """
    grids = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    counts, first, guesses = search_batch(grids_to_masks(grids), 2)
    return first, counts, guesses
