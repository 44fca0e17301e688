"""Directories written by the official TRM dataset builders (dataset/build_{sudoku,maze,arc}_dataset.py).

Layout (official dataset/common.py PuzzleDatasetMetadata and puzzle_dataset.py):

    <dir>/<split>/dataset.json      pad_id, ignore_label_id, blank_identifier_id, vocab_size, seq_len,
                                    num_puzzle_identifiers, total_groups, mean_puzzle_examples,
                                    total_puzzles, sets
    <dir>/<split>/<set>__inputs.npy              [E, seq_len] token ids (E examples)
    <dir>/<split>/<set>__labels.npy              [E, seq_len] token ids, ignore_label_id = masked
    <dir>/<split>/<set>__puzzle_identifiers.npy  int32 [P]: puzzle p's identifier (puzzle-embedding row)
    <dir>/<split>/<set>__puzzle_indices.npy      int32 [P+1]: puzzle p's examples are [idx[p], idx[p+1])
    <dir>/<split>/<set>__group_indices.npy       int32 [G+1]: group g's puzzles are [idx[g], idx[g+1])

Splits are "train" and "test". Inputs and labels are memory-mapped (read-only); each example
gets the identifier of the puzzle it belongs to.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from typing import Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.tokenizers import CharTokenizer, grid_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks.maze.mazes import MAZE_VOCAB_SIZE, maze_tokenizer

SPLIT_DIRS = {"train": "train", "eval": "test"}  # our split name -> the official directory
FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
METADATA_KEYS = {"pad_id": int, "ignore_label_id": (int, type(None)), "blank_identifier_id": int,
                 "vocab_size": int, "seq_len": int, "num_puzzle_identifiers": int, "total_groups": int,
                 "mean_puzzle_examples": (int, float), "total_puzzles": int, "sets": list}


@dataclass
class PuzzleSplit:
    """One split of an official dataset directory, all its sets in order.

    `inputs`/`labels` are the memory maps themselves when the split has one set (the
    builders write one, "all"), else their concatenation in memory. Stored labels equal
    to `metadata["ignore_label_id"]` are masked.
    """

    metadata: dict
    inputs: np.ndarray  # [E, seq_len]
    labels: np.ndarray  # [E, seq_len]
    puzzle_ids: np.ndarray  # int32 [E]: identifier of each example's puzzle
    groups: np.ndarray  # int64 [E]: group of each example (numbered across sets)


def read_metadata(split_dir: str) -> dict:
    """The split's dataset.json, checked for the official keys and types."""
    path = os.path.join(split_dir, "dataset.json")
    if not os.path.isfile(path):
        raise TRMError(f"{path} not found: data.dataset_dir must be a directory written by the official builders "
                       "(e.g. `python dataset/build_sudoku_dataset.py --output-dir DIR`), holding train/ and test/")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise TRMError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TRMError(f"{path}: expected a JSON object of dataset metadata, got {type(meta).__name__}")
    for key, kind in METADATA_KEYS.items():
        if key not in meta:
            raise TRMError(f"{path}: missing key {key!r} (official dataset/common.py PuzzleDatasetMetadata)")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise TRMError(f"{path}: {key!r} has the wrong type ({type(meta[key]).__name__})")
    if not meta["sets"] or not all(isinstance(s, str) and s for s in meta["sets"]):
        raise TRMError(f"{path}: 'sets' must be a non-empty list of set names, got {meta['sets']!r}")
    for key in ("vocab_size", "seq_len", "num_puzzle_identifiers"):
        if meta[key] <= 0:
            raise TRMError(f"{path}: {key!r} must be > 0, got {meta[key]}")
    return meta


def _load(split_dir: str, set_name: str, field: str, mmap: bool) -> np.ndarray:
    path = os.path.join(split_dir, f"{set_name}__{field}.npy")
    if not os.path.isfile(path):
        raise TRMError(f"{path} not found: an official dataset split holds {', '.join(f'<set>__{f}.npy' for f in FIELDS)} "
                       f"for every set in dataset.json")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TRMError(f"{path}: not a readable .npy array without pickled objects ({e})") from None


def read_split(dataset_dir: str, split: str) -> PuzzleSplit:
    """Read and check one split ("train" or "eval" = the official "test") of `dataset_dir`."""
    if split not in SPLIT_DIRS:
        raise TRMError(f"split must be one of {tuple(SPLIT_DIRS)}, got {split!r}")
    split_dir = os.path.join(dataset_dir, SPLIT_DIRS[split])
    meta = read_metadata(split_dir)
    meta_path = os.path.join(split_dir, "dataset.json")
    inputs, labels, ids, groups = [], [], [], []
    group_base = 0
    for set_name in meta["sets"]:
        x = _load(split_dir, set_name, "inputs", True)
        y = _load(split_dir, set_name, "labels", True)
        pid = _load(split_dir, set_name, "puzzle_identifiers", False)
        pidx = _load(split_dir, set_name, "puzzle_indices", False)
        gidx = _load(split_dir, set_name, "group_indices", False)
        where = f"{meta_path} (set {set_name!r})"
        for name, arr in (("inputs", x), ("labels", y), ("puzzle_identifiers", pid), ("puzzle_indices", pidx),
                          ("group_indices", gidx)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise TRMError(f"{where}: {set_name}__{name}.npy must hold integers, got {arr.dtype}")
        if x.ndim != 2 or x.shape != y.shape:
            raise TRMError(f"{where}: inputs {x.shape} and labels {y.shape} must both be [examples, seq_len]")
        if x.shape[1] != meta["seq_len"]:
            raise TRMError(f"{where}: seq_len is {meta['seq_len']} but the arrays have {x.shape[1]} positions")
        if pid.ndim != 1 or pidx.ndim != 1 or gidx.ndim != 1:
            raise TRMError(f"{where}: puzzle_identifiers, puzzle_indices and group_indices must be 1-D")
        if len(pidx) != len(pid) + 1 or pidx[0] != 0 or pidx[-1] != len(x) or (np.diff(pidx) < 0).any():
            raise TRMError(f"{where}: puzzle_indices must rise from 0 to the {len(x)} examples with one more "
                           f"entry than the {len(pid)} puzzle identifiers; got {len(pidx)} entries ending at "
                           f"{int(pidx[-1]) if len(pidx) else None}")
        if len(gidx) < 1 or gidx[0] != 0 or gidx[-1] != len(pid) or (np.diff(gidx) < 0).any():
            raise TRMError(f"{where}: group_indices must rise from 0 to the {len(pid)} puzzles")
        if len(pid) and (pid.min() < 0 or pid.max() >= meta["num_puzzle_identifiers"]):
            raise TRMError(f"{where}: puzzle identifiers span [{int(pid.min())}, {int(pid.max())}] but "
                           f"num_puzzle_identifiers is {meta['num_puzzle_identifiers']}")
        _check_token_range(x, y, meta, where, set_name)
        counts = np.diff(pidx)
        ids.append(np.repeat(pid.astype(np.int32), counts))
        puzzle_group = np.repeat(np.arange(len(gidx) - 1), np.diff(gidx))
        groups.append(group_base + np.repeat(puzzle_group, counts))
        group_base += len(gidx) - 1
        inputs.append(x)
        labels.append(y)
    if len(inputs) == 1:
        x, y = inputs[0], labels[0]
    else:
        x, y = np.concatenate(inputs), np.concatenate(labels)
    return PuzzleSplit(meta, x, y, np.concatenate(ids), np.concatenate(groups))


def _check_token_range(x, y, meta, where, set_name, chunk: int = 1 << 16) -> None:
    """Every token id in [0, vocab_size), read in chunks so a large memory map is not loaded at once."""
    vocab = meta["vocab_size"]
    for name, arr in (("inputs", x), ("labels", y)):
        for start in range(0, len(arr), chunk):
            part = np.asarray(arr[start:start + chunk])
            if part.size and (part.min() < 0 or part.max() >= vocab):
                row = start + int(np.flatnonzero(((part < 0) | (part >= vocab)).any(axis=1))[0])
                raise TRMError(f"{where}: {set_name}__{name}.npy row {row} has token ids outside "
                               f"[0, vocab_size={vocab})")


def puzzle_tokenizer(vocab_size: int) -> CharTokenizer:
    """A character tokenizer with ids 0..vocab_size-1 (pad 0) for decoding predictions.

    Sudoku (11) and maze (6) directories get their own symbols; other vocabularies get
    digits then letters (ARC: '0'-'9' colours after pad and eos are ids 2..11).
    """
    if vocab_size == 11:
        return grid_tokenizer()
    if vocab_size == MAZE_VOCAB_SIZE:
        return maze_tokenizer()
    symbols = string.digits + string.ascii_letters + string.punctuation
    symbols += "".join(chr(0x100 + i) for i in range(max(0, vocab_size - 1 - len(symbols))))
    return CharTokenizer(symbols[:vocab_size - 1], eos=False, unk=False, name=f"puzzle{vocab_size}")


def puzzle_metadata(dataset_dir: str) -> dict:
    """The train split's dataset.json (vocab_size, seq_len, num_puzzle_identifiers, ...)."""
    return read_metadata(os.path.join(dataset_dir, SPLIT_DIRS["train"]))


def write_puzzle_dataset(dataset_dir: str, split: str, inputs, labels, *, puzzle_identifiers=None,
                         puzzle_indices=None, group_indices=None, vocab_size: int, pad_id: int = 0,
                         ignore_label_id: int | None = 0, num_puzzle_identifiers: int | None = None,
                         set_name: str = "all") -> str:
    """Write one split in the official layout (for exporting data to the official code).

    Defaults follow the official Sudoku/Maze builders: one example per puzzle, one puzzle per
    group, identifier 0. Returns the split directory.
    """
    x = np.asarray(inputs)
    y = np.asarray(labels)
    n = len(x)
    pidx = np.arange(n + 1, dtype=np.int32) if puzzle_indices is None else np.asarray(puzzle_indices, np.int32)
    pid = np.zeros(len(pidx) - 1, np.int32) if puzzle_identifiers is None else np.asarray(puzzle_identifiers, np.int32)
    gidx = np.arange(len(pid) + 1, dtype=np.int32) if group_indices is None else np.asarray(group_indices, np.int32)
    meta = {"pad_id": int(pad_id), "ignore_label_id": ignore_label_id, "blank_identifier_id": 0,
            "vocab_size": int(vocab_size), "seq_len": int(x.shape[1]),
            "num_puzzle_identifiers": int(num_puzzle_identifiers or (int(pid.max()) + 1 if len(pid) else 1)),
            "total_groups": len(gidx) - 1, "mean_puzzle_examples": float(n / max(1, len(pid))),
            "total_puzzles": len(pid), "sets": [set_name]}
    split_dir = os.path.join(dataset_dir, SPLIT_DIRS.get(split, split))
    os.makedirs(split_dir, exist_ok=True)
    with open(os.path.join(split_dir, "dataset.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    for field, arr in zip(FIELDS, (x, y, pid, pidx, gidx)):
        np.save(os.path.join(split_dir, f"{set_name}__{field}.npy"), arr)
    return split_dir


def make_puzzle_dataset(dataset_dir: str, split: str, seq_len: Optional[int] = None) -> ArrayDataset:
    """One split ("train", or "eval" = the official "test") of a directory written by the official
    builders: memory-mapped inputs/labels, per-example puzzle identifiers, the directory's
    ignore_label_id masked (IGNORE_LABEL in batches), difficulty 0."""
    part = read_split(dataset_dir, split)
    meta = part.metadata
    if seq_len is not None and seq_len != meta["seq_len"]:
        raise TRMError(f"{os.path.join(dataset_dir, SPLIT_DIRS[split], 'dataset.json')}: seq_len is "
                       f"{meta['seq_len']} but data.seq_len is {seq_len}; set data.seq_len: {meta['seq_len']}")
    return ArrayDataset(part.inputs, part.labels, np.zeros(len(part.inputs), np.float32),
                        puzzle_ids=part.puzzle_ids, ignore_label_id=meta["ignore_label_id"])
