"""Task-level ARC augmentations (official build_arc_dataset.py recipe): one of the 8 dihedral transforms
and a permutation of colours 1..9 (0, the background, stays), the same for every example of a task.
Augmented tasks identical in content to one already kept (a sorted hash of their example pairs) are
rejected; at most ARC_AUGMENT_RETRIES_FACTOR * num_aug candidates are tried per task.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np

from trm_jax.data.grids import NUM_DIHEDRAL, dihedral_transform, inverse_dihedral_transform

ARC_AUGMENT_RETRIES_FACTOR = 5  # official ARCAugmentRetriesFactor
PUZZLE_ID_SEPARATOR = "|||"  # official PuzzleIdSeparator: "<task>|||t<tid>|||<colour map digits>"
_CANDIDATE_CHUNK = 256


@dataclass(frozen=True)
class Augmentation:
    """tid: dihedral transform id 0..7; colour_map: uint8 [10], colour c -> colour_map[c], colour_map[0] = 0."""

    tid: int
    colour_map: tuple

    @property
    def is_identity(self) -> bool:
        return self.tid == 0 and self.colour_map == tuple(range(10))

    def apply(self, grid: np.ndarray) -> np.ndarray:
        return dihedral_transform(np.asarray(self.colour_map, np.uint8)[np.asarray(grid)], self.tid)

    def invert(self, grid: np.ndarray) -> np.ndarray:
        inverse_map = np.argsort(np.asarray(self.colour_map)).astype(np.uint8)
        return inverse_map[inverse_dihedral_transform(np.asarray(grid), self.tid)]


IDENTITY = Augmentation(0, tuple(range(10)))


def puzzle_identifier_name(task_id: str, aug: Augmentation) -> str:
    """The official naming: the task id for the original, "<task>|||t<tid>|||<map>" for an augmentation."""
    if aug.is_identity:
        return task_id
    return f"{task_id}{PUZZLE_ID_SEPARATOR}t{aug.tid}{PUZZLE_ID_SEPARATOR}{''.join(str(c) for c in aug.colour_map)}"


def parse_puzzle_identifier(name: str) -> tuple[str, Augmentation]:
    """Inverse of puzzle_identifier_name (official inverse_aug)."""
    if PUZZLE_ID_SEPARATOR not in name:
        return name, IDENTITY
    task_id, tid, colours = name.rsplit(PUZZLE_ID_SEPARATOR, 2)
    return task_id, Augmentation(int(tid[1:]), tuple(int(c) for c in colours))


def task_rng(seed: int, task_id: str, stream: int) -> np.random.Generator:
    """A generator per (seed, task, purpose): adding or removing tasks leaves the others' draws unchanged."""
    return np.random.default_rng([seed, zlib.crc32(task_id.encode()), stream])


def augment_grid_batch(grid: np.ndarray, tids: np.ndarray, maps: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """One grid under many augmentations: [(rows of the batch, grids [k, h', w'])] grouped by transform id."""
    coloured = maps[:, np.asarray(grid)]  # [A, h, w]
    groups = []
    for t in range(NUM_DIHEDRAL):
        sel = np.nonzero(tids == t)[0]
        if len(sel):
            groups.append((sel, np.ascontiguousarray(dihedral_transform(coloured[sel], t))))
    return groups


def _candidate_hashes(examples, tids: np.ndarray, maps: np.ndarray) -> list[bytes]:
    """Content hash per candidate: sorted per-pair bytes (order-free, as official puzzle_hash)."""
    a = len(tids)
    pair_bytes = [[b""] * len(examples) for _ in range(a)]
    for e, (inp, out) in enumerate(examples):
        parts = []
        for grid in (inp, out):
            flat = [None] * a
            for sel, grids in augment_grid_batch(grid, tids, maps):
                head = bytes(grids.shape[1:])
                for i, row in zip(sel, grids.reshape(len(sel), -1)):
                    flat[i] = head + row.tobytes()
            parts.append(flat)
        for i in range(a):
            pair_bytes[i][e] = parts[0][i] + b"|" + parts[1][i]
    return [hashlib.sha256(b"||".join(sorted(p))).digest() for p in pair_bytes]


def choose_augmentations(examples, num_aug: int, rng: np.random.Generator,
                         retries_factor: int = ARC_AUGMENT_RETRIES_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """Up to num_aug distinct augmentations of a task, none equal in content to the original.

    examples: every (input, output) pair of the task (uint8 grids). Returns (tids int8 [A], colour maps
    uint8 [A, 10]) with A <= num_aug (fewer when the task has too few distinct augmentations).
    """
    seen = set(_candidate_hashes(examples, np.zeros(1, np.int64), np.arange(10, dtype=np.uint8)[None]))
    kept_t, kept_m = [], []
    budget = retries_factor * num_aug
    while len(kept_t) < num_aug and budget > 0:
        n = min(_CANDIDATE_CHUNK, budget)
        budget -= n
        tids = rng.integers(0, NUM_DIHEDRAL, size=n)
        perm = np.argsort(rng.random((n, 9)), axis=1).astype(np.uint8) + 1
        maps = np.concatenate([np.zeros((n, 1), np.uint8), perm], axis=1)
        for i, h in enumerate(_candidate_hashes(examples, tids, maps)):
            if h not in seen:
                seen.add(h)
                kept_t.append(tids[i])
                kept_m.append(maps[i])
                if len(kept_t) >= num_aug:
                    break
    return np.asarray(kept_t, np.int8).reshape(-1), np.asarray(kept_m, np.uint8).reshape(-1, 10)
