"""Batch iterators for the Trainer: seeded, resumable, shard-aware, fixed shapes.

The training stream is the concatenation of per-epoch permutations (epoch e is shuffled
with an RNG seeded by (seed, e)); global batch k is stream items [k*B, (k+1)*B). So
every batch is full even across epoch ends or when N < B, the sequence does not depend
on the number of shards, and the whole state is two integers.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.text import IGNORE_LABEL
from trm_jax.errors import TRMError

_AUGMENT_STREAM = 0xA116


def _check_sharding(batch_size: int, shard_index: int, num_shards: int) -> int:
    if batch_size <= 0:
        raise TRMError(f"batch_size must be > 0, got {batch_size}")
    if num_shards <= 0 or not 0 <= shard_index < num_shards:
        raise TRMError(f"shard_index must be in [0, num_shards), got {shard_index} of {num_shards}")
    if batch_size % num_shards:
        raise TRMError(f"the global batch size {batch_size} is not divisible by the number of shards "
                       f"(devices x hosts) {num_shards}; set training.batch_size to a multiple of {num_shards}")
    return batch_size // num_shards


class BatchIterator:
    """Infinite iterator of {"inputs", "labels": int32 [b, L], "difficulty": float32 [b],
    "puzzle_ids": int32 [b] (zeros when the dataset has none)}.

    `batch_size` is the global batch; this shard yields its slice
    [shard_index*b, (shard_index+1)*b) of each global batch, b = batch_size // num_shards.
    `state_dict()` / `load_state_dict()` save and restore the position exactly.
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, *, seed: int, shard_index: int = 0,
                 num_shards: int = 1, shuffle: bool = True):
        if len(dataset) == 0:
            raise TRMError("cannot iterate over an empty dataset: check data.train_path / data.num_train")
        self.local_batch_size = _check_sharding(batch_size, shard_index, num_shards)
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = int(seed)
        self.shard_index = shard_index
        self.num_shards = num_shards
        self.shuffle = shuffle
        self._epoch = 0  # completed epochs
        self._offset = 0  # items of the current epoch already consumed
        self._orders: dict[int, np.ndarray] = {}

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    @property
    def epoch(self) -> float:
        """Progress in epochs (fractional)."""
        return self._epoch + self._offset / self.num_samples

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            # Keep only the epochs a batch can touch (a batch may span several when N < B).
            self._orders = {e: o for e, o in self._orders.items() if e >= self._epoch}
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            else:
                order = np.arange(self.num_samples)
            self._orders[epoch] = order
        return self._orders[epoch]

    def _next_indices(self) -> np.ndarray:
        """The next global batch's dataset rows; advances the position."""
        n, need, parts = self.num_samples, self.batch_size, []
        while need:
            take = min(need, n - self._offset)
            parts.append(self._order(self._epoch)[self._offset:self._offset + take])
            need -= take
            self._offset += take
            if self._offset == n:
                self._epoch, self._offset = self._epoch + 1, 0
        return np.concatenate(parts)

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        stream_pos = self._epoch * self.num_samples + self._offset
        idx = self._next_indices()
        lo, hi = self.shard_index * self.local_batch_size, (self.shard_index + 1) * self.local_batch_size
        ds = self.dataset
        if ds.augment is None:
            idx = idx[lo:hi]
            inputs, labels = ds.rows(idx)
            return {"inputs": inputs, "labels": labels, "difficulty": ds.difficulty[idx],
                    "puzzle_ids": ds.puzzle_ids_at(idx)}
        # Augment the whole global batch with one RNG keyed by the stream position, then
        # slice: every shard count sees the same global batch, and a resume the same draws.
        rng = np.random.default_rng([self.seed, _AUGMENT_STREAM, stream_pos])
        inputs, labels = ds.augment(*ds.rows(idx), rng)
        return {"inputs": np.ascontiguousarray(inputs[lo:hi], dtype=np.int32),
                "labels": np.ascontiguousarray(labels[lo:hi], dtype=np.int32),
                "difficulty": ds.difficulty[idx[lo:hi]], "puzzle_ids": ds.puzzle_ids_at(idx[lo:hi])}

    def state_dict(self) -> dict:
        """Plain ints: completed epochs, position within the epoch, and the dataset size for checking."""
        return {"epoch": int(self._epoch), "position": int(self._offset), "num_samples": int(self.num_samples)}

    def load_state_dict(self, state: dict) -> None:
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
            num_samples = int(state.get("num_samples", self.num_samples))
        except (KeyError, TypeError, ValueError) as e:
            raise TRMError(f"invalid data-iterator state {state!r} ({e}); the checkpoint may be from another "
                           "version: start a fresh run or delete the checkpoint") from None
        if num_samples != self.num_samples:
            raise TRMError(f"the checkpoint's data iterator was over {num_samples} samples, but the dataset now "
                           f"has {self.num_samples}; resume with the same data config (data.*) as the run")
        if epoch < 0 or not 0 <= position < self.num_samples:
            raise TRMError(f"invalid data-iterator state: epoch {epoch}, position {position} of {self.num_samples}")
        self._epoch, self._offset, self._orders = epoch, position, {}


def num_eval_batches(num_samples: int, batch_size: int) -> int:
    return math.ceil(num_samples / batch_size)


def eval_batches(dataset: ArrayDataset, batch_size: int, *, shard_index: int = 0,
                 num_shards: int = 1) -> Iterator[dict]:
    """One pass over `dataset` in order, in fixed-shape batches (global `batch_size`).

    The last batch is padded: padded rows copy row 0's input, have IGNORE_LABEL labels,
    mask False, puzzle id 0 and index -1. Yields {"inputs", "labels", "difficulty",
    "puzzle_ids" int32 [b] (zeros when the dataset has none), "mask" bool [b],
    "index" int64 [b] (dataset row, -1 for padding)}, this shard's slice of each batch.
    """
    local = _check_sharding(batch_size, shard_index, num_shards)
    n = len(dataset)
    lo = shard_index * local
    for start in range(0, n, batch_size):
        index = np.arange(start + lo, start + lo + local)
        mask = index < n
        rows = np.where(mask, index, 0)
        inputs, labels = dataset.rows(rows)
        labels[~mask] = IGNORE_LABEL
        difficulty = np.where(mask, dataset.difficulty[rows], 0.0).astype(np.float32)
        puzzle_ids = np.where(mask, dataset.puzzle_ids_at(rows), 0).astype(np.int32)
        yield {"inputs": inputs, "labels": labels, "difficulty": difficulty,
               "puzzle_ids": puzzle_ids, "mask": mask, "index": np.where(mask, index, -1)}
