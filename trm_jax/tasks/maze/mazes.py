"""Maze-Hard: mazes with one shortest start-goal path (official dataset/build_maze_dataset.py format).

A maze is a square grid written row-major as one string over the charset "# SGo": '#' wall,
' ' open, 'S' start, 'G' goal, 'o' path. The question has exactly one S and one G; the
answer is the question with the cells of the shortest S-G path other than S and G marked
'o'. Tokens (official char2id): pad 0, then the charset as 1..5 (vocab 6); 30x30 = 900 tokens.

`generate_mazes` builds such mazes offline (the published 30x30 hard set cannot be
downloaded everywhere): a perfect maze (random depth-first search, long winding corridors)
plus a few extra openings that make loops, then S and G placed so the S-G shortest path is
unique (counted by BFS over all mazes at once) and at least `min_path_len` steps long.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.grids import DihedralAugmenter
from trm_jax.tasks.puzzle_csv import read_rows, write_rows
from trm_jax.data.text import IGNORE_LABEL
from trm_jax.data.tokenizers import CharTokenizer
from trm_jax.errors import TRMError

MAZE_CHARSET = "# SGo"  # official build_maze_dataset.py CHARSET: wall, open, start, goal, path
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5  # token ids: charset index + 1 (0 = pad)
MAZE_VOCAB_SIZE = len(MAZE_CHARSET) + 1  # official: PAD + charset

_CHAR_TO_ID = np.zeros(256, dtype=np.int8)
_CHAR_TO_ID[np.frombuffer(MAZE_CHARSET.encode(), np.uint8)] = np.arange(1, len(MAZE_CHARSET) + 1)
_ID_TO_BYTE = np.frombuffer(("?" + MAZE_CHARSET).encode(), np.uint8)
_GEN_STREAM = 0x3A2E


def maze_tokenizer() -> CharTokenizer:
    """The 6-token maze vocabulary: pad 0, '#' 1, ' ' 2, 'S' 3, 'G' 4, 'o' 5 (official ids)."""
    return CharTokenizer(MAZE_CHARSET, eos=False, unk=False, name="maze")


def maze_texts(grids) -> list[str]:
    """int [N, size*size] token grids as row-major strings."""
    g = np.asarray(grids, dtype=np.int64)
    width = g.shape[1]
    blob = _ID_TO_BYTE[g].tobytes().decode("ascii")
    return [blob[i:i + width] for i in range(0, len(blob), width)]


def maze_ids(texts, where: str = "maze") -> np.ndarray:
    """Row-major maze strings (all the same length) as int8 [N, L] token ids."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, 0), np.int8)
    width = len(texts[0])
    for i, t in enumerate(texts):
        if len(t) != width:
            raise TRMError(f"{where} {i}: has {len(t)} characters but the first has {width}; all mazes must "
                           "have the same size")
    raw = np.frombuffer("".join(texts).encode("latin-1", errors="replace"), np.uint8).reshape(len(texts), width)
    ids = _CHAR_TO_ID[raw]
    bad = ids == 0
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise TRMError(f"{where} {int(i)}: character {chr(raw[i, j])!r} is not in the maze charset {MAZE_CHARSET!r}")
    return ids


def _side(length: int, where: str) -> int:
    side = int(round(length ** 0.5))
    if side * side != length or side < 2:
        raise TRMError(f"{where}: a maze is a square grid written row-major, but {length} is not a square")
    return side


# ----------------------------------------------------------------------------- BFS over many mazes

def _shift_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 4-neighbour values of every cell, for [B, H, W] arrays (outside = 0)."""
    out = np.zeros_like(x)
    out[:, 1:] += x[:, :-1]
    out[:, :-1] += x[:, 1:]
    out[:, :, 1:] += x[:, :, :-1]
    out[:, :, :-1] += x[:, :, 1:]
    return out


def bfs_counts(passable: np.ndarray, source: np.ndarray):
    """Shortest-path distances and path counts from one source per maze.

    passable bool [B, H, W], source bool [B, H, W] (one cell per maze). Returns
    (dist int32 [B, H, W], -1 where unreachable; count int8 [B, H, W]: number of shortest
    paths from the source, capped at 2, so 1 means unique).
    """
    dist = np.where(source, 0, -1).astype(np.int32)
    count = source.astype(np.int8)
    frontier = source.copy()
    d = 0
    while frontier.any():
        d += 1
        reach = _shift_sum(np.where(frontier, count, 0).astype(np.int16))
        new = (reach > 0) & passable & (dist < 0)
        dist[new] = d
        count[new] = np.minimum(reach[new], 2)
        frontier = new
    return dist, count


# ----------------------------------------------------------------------------- generator

def _perfect_mazes(num: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """`num` random perfect mazes (random DFS, all mazes in lockstep) as open bool [num, 2c-1, 2c-1].

    Lattice cells sit at even coordinates; the DFS opens the wall cell between two lattice
    cells when it moves between them, so any two open cells have exactly one simple path.
    """
    side = 2 * cells - 1
    n = cells * cells
    r, c = np.divmod(np.arange(n), cells)
    nbr = np.full((n, 4), -1, dtype=np.int64)  # up, down, left, right
    nbr[r > 0, 0] = np.flatnonzero(r > 0) - cells
    nbr[r < cells - 1, 1] = np.flatnonzero(r < cells - 1) + cells
    nbr[c > 0, 2] = np.flatnonzero(c > 0) - 1
    nbr[c < cells - 1, 3] = np.flatnonzero(c < cells - 1) + 1
    grid = np.zeros((num, side, side), dtype=bool)
    grid[:, ::2, ::2] = True
    visited = np.zeros((num, n), dtype=bool)
    stack = np.zeros((num, n), dtype=np.int64)
    depth = np.ones(num, dtype=np.int64)
    rows = np.arange(num)
    start = rng.integers(0, n, num)
    stack[:, 0] = start
    visited[rows, start] = True
    while (depth > 0).any():
        live = np.flatnonzero(depth > 0)
        cur = stack[live, depth[live] - 1]
        cand = nbr[cur]  # [A, 4]
        ok = cand >= 0
        ok[ok] = ~visited[live[np.nonzero(ok)[0]], cand[ok]]
        has = ok.any(axis=1)
        pick = np.where(ok, rng.random(ok.shape), -1.0).argmax(axis=1)
        go, cur_go = live[has], cur[has]
        nxt = cand[has, pick[has]]
        visited[go, nxt] = True
        stack[go, depth[go]] = nxt
        depth[go] += 1
        wall_r = r[cur_go] + r[nxt]  # midpoint in canvas coordinates (2*r + 2*r') / 2
        wall_c = c[cur_go] + c[nxt]
        grid[go, wall_r, wall_c] = True
        depth[live[~has]] -= 1
    return grid


def _open_extra_walls(grid: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Open `count` random walls between two lattice cells per maze (in place): loops."""
    if count <= 0:
        return
    side = grid.shape[1]
    rr, cc = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    between = ((rr % 2) + (cc % 2)) == 1  # a wall cell between two lattice cells
    pos = np.flatnonzero(between.reshape(-1))
    flat = grid.reshape(len(grid), -1)
    closed = ~flat[:, pos]
    # `count` distinct closed walls per maze, chosen by the smallest random keys.
    keys = np.where(closed, rng.random(closed.shape), np.inf)
    k = min(count, len(pos))
    chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
    valid = np.isfinite(np.take_along_axis(keys, chosen, axis=1))
    rows = np.repeat(np.arange(len(grid)), k).reshape(len(grid), k)
    flat[rows[valid], pos[chosen[valid]]] = True


def _random_cell(mask: np.ndarray, rng: np.random.Generator):
    """One uniformly random True cell per maze (flat index) and whether the maze had one."""
    flat = mask.reshape(len(mask), -1)
    keys = np.where(flat, rng.random(flat.shape), -1.0)
    return keys.argmax(axis=1), flat.any(axis=1)


def _generate_round(num: int, size: int, min_steps: int, extra: int, rng: np.random.Generator):
    """One batch of candidate mazes: (questions int8 [A, size*size], answers, steps) of those accepted."""
    cells = (size + 1) // 2 if size % 2 else size // 2
    canvas = _perfect_mazes(num, cells, rng)
    _open_extra_walls(canvas, extra, rng)
    span = canvas.shape[1]
    open_ = np.zeros((num, size, size), dtype=bool)
    # Even sizes leave one wall row and column: put them on a random side of each maze.
    offsets = rng.integers(0, size - span + 1, (num, 2))
    for oy in range(size - span + 1):
        for ox in range(size - span + 1):
            sel = (offsets[:, 0] == oy) & (offsets[:, 1] == ox)
            open_[sel, oy:oy + span, ox:ox + span] = canvas[sel]
    flat_cells = size * size
    s_idx, _ = _random_cell(open_, rng)
    start = np.zeros((num, flat_cells), dtype=bool)
    start[np.arange(num), s_idx] = True
    start = start.reshape(num, size, size)
    dist, count = bfs_counts(open_, start)
    # Goal: a cell whose shortest path from S is unique and at least min_steps long.
    g_idx, ok = _random_cell((count == 1) & (dist >= min_steps), rng)
    keep = np.flatnonzero(ok)
    if not keep.size:
        return np.zeros((0, flat_cells), np.int8), np.zeros((0, flat_cells), np.int8), np.zeros(0, np.int32)
    open_, start, dist, s_idx, g_idx = open_[keep], start[keep], dist[keep], s_idx[keep], g_idx[keep]
    k = len(keep)
    goal = np.zeros((k, flat_cells), dtype=bool)
    goal[np.arange(k), g_idx] = True
    goal = goal.reshape(k, size, size)
    steps = dist.reshape(k, -1)[np.arange(k), g_idx]
    dist_g, _ = bfs_counts(open_, goal)
    # With one shortest path, the cells on a shortest path are exactly that path's cells.
    on_path = (dist >= 0) & (dist_g >= 0) & (dist + dist_g == steps[:, None, None])
    question = np.where(open_, OPEN, WALL).astype(np.int8)
    question[start] = START
    question[goal] = GOAL
    answer = np.where(on_path & (question == OPEN), PATH, question).astype(np.int8)
    return question.reshape(k, -1), answer.reshape(k, -1), steps.astype(np.int32)


def generate_maze_arrays(num: int, size: int = 30, seed: int = 0, min_path_len: int | None = None,
                         extra_openings: int | None = None):
    """`generate_mazes` as token arrays: (questions int8 [num, size*size], answers, steps int32 [num]).

    `steps` is the S-G shortest-path length in moves (the answer marks steps - 1 cells 'o').
    """
    if num < 0:
        raise TRMError(f"number of mazes must be >= 0, got {num}")
    if size < 3:
        raise TRMError(f"maze size must be >= 3, got {size}")
    min_steps = max(1, int(min_path_len or 1))
    if min_steps > size * size // 2:
        raise TRMError(f"min_path_len {min_path_len} is too long for a {size}x{size} maze; "
                       f"use at most {size * size // 2} (the published 30x30 hard set has paths of ~110+ cells)")
    extra = max(1, size // 6) if extra_openings is None else int(extra_openings)
    rng = np.random.default_rng([int(seed), _GEN_STREAM, size, min_steps, extra])
    qs, ans, steps, have, empty_rounds = [], [], [], 0, 0
    while have < num:
        need = num - have
        q, a, s = _generate_round(int(need * 1.25) + 8, size, min_steps, extra, rng)
        empty_rounds = empty_rounds + 1 if not len(q) else 0
        if empty_rounds >= 20:
            raise TRMError(f"could not generate {size}x{size} mazes with a unique shortest path of at least "
                           f"{min_steps} steps; lower data.maze_min_path_len")
        qs.append(q[:need])
        ans.append(a[:need])
        steps.append(s[:need])
        have += len(qs[-1])
    if not qs:
        return np.zeros((0, size * size), np.int8), np.zeros((0, size * size), np.int8), np.zeros(0, np.int32)
    return np.concatenate(qs), np.concatenate(ans), np.concatenate(steps)


def generate_mazes(num: int, size: int = 30, seed: int = 0, min_path_len: int | None = None,
                   extra_openings: int | None = None) -> list[tuple[str, str]]:
    """`num` (question, answer) maze pairs, row-major strings of size*size characters over "# SGo".

    Every maze has exactly one S and one G and exactly one shortest S-G path, at least
    `min_path_len` moves long (None: any length); the answer marks that path's cells other
    than S and G with 'o'. `extra_openings` walls (default size // 6) are opened in the
    perfect maze to make loops. Deterministic in all arguments.
    """
    q, a, _ = generate_maze_arrays(num, size, seed, min_path_len, extra_openings)
    return list(zip(maze_texts(q), maze_texts(a)))


@functools.lru_cache(maxsize=4)
def generated_maze_arrays_cached(num: int, size: int, seed: int, min_path_len: int | None):
    """In-process cache of `generate_maze_arrays` (curriculum stages rebuild datasets)."""
    return generate_maze_arrays(num, size, seed, min_path_len)


# ----------------------------------------------------------------------------- validation

def check_mazes(questions: np.ndarray, answers: np.ndarray, size: int) -> list[tuple[int, str]]:
    """Rows that are not valid maze pairs, as (row, reason), first reason per row; [] if all valid.

    Valid: the question holds only '#', ' ', 'S', 'G' with exactly one S and one G; the answer
    equals the question except for 'o' on open cells; the 'o' cells with S and G form one
    simple path of 4-neighbour steps from S to G.
    """
    q = np.asarray(questions).reshape(-1, size, size)
    a = np.asarray(answers).reshape(-1, size, size)
    reasons: dict[int, str] = {}

    def flag(bad, msg):
        for i in np.flatnonzero(bad):
            reasons.setdefault(int(i), msg)

    flag((q == PATH).any(axis=(1, 2)), "the question contains 'o' (path marks belong to the answer)")
    flag((q == START).sum(axis=(1, 2)) != 1, "the question must have exactly one 'S'")
    flag((q == GOAL).sum(axis=(1, 2)) != 1, "the question must have exactly one 'G'")
    flag(((a != q) & ~((a == PATH) & (q == OPEN))).any(axis=(1, 2)),
         "the answer differs from the question other than by 'o' on open cells")
    on = (a == PATH) | (q == START) | (q == GOAL)
    degree = _shift_sum(on.astype(np.int8))
    ends = (q == START) | (q == GOAL)
    flag((on & ends & (degree != 1)).any(axis=(1, 2)) | (on & (a == PATH) & (degree != 2)).any(axis=(1, 2)),
         "the answer's 'o' cells are not a single path from S to G")
    # Connected: a flood fill from S inside the path cells reaches all of them.
    reached = q == START
    while True:
        grow = on & ~reached & (_shift_sum(reached.astype(np.int8)) > 0)
        if not grow.any():
            break
        reached |= grow
    flag((on & ~reached).any(axis=(1, 2)), "the answer's 'o' cells do not connect S to G")
    return sorted(reasons.items())


def solves_maze(question, answer) -> bool:
    """True if `answer` solves the maze `question` (token rows of one square grid, row-major; the maze task's
    verifier): the question is a valid maze (only '#', ' ', 'S', 'G', exactly one S and one G), the answer
    keeps its walls, S and G and differs only by 'o' on open cells, and the 'o' cells with S and G form one
    simple path of 4-neighbour steps from S to G (S and G have one path neighbour each, every 'o' two, all
    connected): `check_mazes`' rule, which every pair of a Maze-Hard file obeys. Any path qualifies, not
    only a shortest one. False, never an error, for anything else (other lengths, a non-square grid)."""
    q, a = np.asarray(question).reshape(-1), np.asarray(answer).reshape(-1)
    side = int(round(q.size ** 0.5))
    if q.size != a.size or side < 2 or side * side != q.size or not np.isin(q, (WALL, OPEN, START, GOAL)).all():
        return False
    return not check_mazes(q[None], a[None], side)


# ----------------------------------------------------------------------------- CSV

@dataclass
class MazeCSV:
    questions: np.ndarray  # int8 [N, size*size] token ids
    answers: np.ndarray  # int8 [N, size*size]
    ratings: np.ndarray  # float32 [N]
    sources: list
    size: int


def read_maze_csv(path: str, *, validate: bool = True) -> MazeCSV:
    """Read a Maze-Hard CSV (`source,question,answer,rating`, row-major grids over "# SGo").

    Errors name the file and line: ragged rows, characters outside the charset, a maze
    without exactly one S and one G, an answer that is not a path from S to G.
    """
    qs, ans, ratings, sources, lines = [], [], [], [], []
    width = None
    for line, source, question, answer, rating in read_rows(path, "maze"):
        if width is None:
            width = len(question)
            _side(width, f"{path}:{line}: question")
        for name, text in (("question", question), ("answer", answer)):
            if len(text) != width:
                raise TRMError(f"{path}:{line}: {name} has {len(text)} characters but the first maze has "
                               f"{width}; every maze must be the same square grid")
            bad = set(text) - set(MAZE_CHARSET if name == "answer" else MAZE_CHARSET[:-1])
            if bad:
                raise TRMError(f"{path}:{line}: {name} holds {''.join(sorted(bad))!r}, outside the maze charset "
                               f"{MAZE_CHARSET!r} ('#' wall, ' ' open, 'S' start, 'G' goal, 'o' path in answers)")
        qs.append(question)
        ans.append(answer)
        ratings.append(rating)
        sources.append(source)
        lines.append(line)
    if not qs:
        raise TRMError(f"{path}: no mazes after the header")
    size = _side(width, path)
    questions, answers = maze_ids(qs, path), maze_ids(ans, path)
    if validate:
        bad = check_mazes(questions, answers, size)
        if bad:
            row, msg = bad[0]
            raise TRMError(f"{path}:{lines[row]}: {msg} ({len(bad)} bad row(s) in the file)")
    return MazeCSV(questions, answers, np.asarray(ratings, np.float32), sources, size)


def write_maze_csv(path: str, pairs, ratings=None, source: str = "trm_jax") -> None:
    """Write (question, answer) string pairs in the Maze-Hard CSV format."""
    pairs = list(pairs)
    ratings = [0] * len(pairs) if ratings is None else list(ratings)
    write_rows(path, ((source, q, a, r) for (q, a), r in zip(pairs, ratings)))


# ----------------------------------------------------------------------------- difficulty

def maze_difficulty(steps, size: int) -> np.ndarray:
    """Per-maze difficulty in [0, 1]: shortest-path length / (4 * size) (30x30: 120 moves -> 1)."""
    return np.clip(np.asarray(steps, np.float32) / (4.0 * size), 0.0, 1.0).astype(np.float32)


def make_maze_dataset(questions, answers, seq_len: int, difficulty=None, augment: bool = False,
                      size: Optional[int] = None) -> ArrayDataset:
    """Tokenized mazes (official token ids, pad 0): input = the question grid, label = the answer
    grid, every cell supervised; positions past size*size are pad / IGNORE_LABEL. `augment`
    adds the 8 dihedral transforms online (training)."""
    q = np.asarray(questions, dtype=np.int32)
    a = np.asarray(answers, dtype=np.int32)
    cells = q.shape[1] if q.ndim == 2 else 0
    size = int(round(cells ** 0.5)) if size is None else int(size)
    if q.shape != a.shape or size * size != cells:
        raise TRMError(f"mazes must be [N, size*size] questions and answers of one shape, got {q.shape} and {a.shape}")
    if seq_len < cells:
        raise TRMError(f"a {size}x{size} maze needs data.seq_len >= {cells} (one token per cell), got {seq_len}")
    n = len(q)
    inputs = np.zeros((n, seq_len), np.int32)
    labels = np.full((n, seq_len), IGNORE_LABEL, np.int32)
    inputs[:, :cells], labels[:, :cells] = q, a
    diff = np.zeros(n, np.float32) if difficulty is None else np.broadcast_to(np.asarray(difficulty, np.float32), (n,))
    texts = [{"input": x, "output": y} for x, y in zip(maze_texts(q), maze_texts(a))]
    aug = DihedralAugmenter(size) if augment else None
    return ArrayDataset(inputs, labels, diff.copy(), texts, aug)
