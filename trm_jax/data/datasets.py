"""ArrayDataset: fixed-shape token arrays, and their builders from text samples, Sudoku grids, mazes and
official dataset directories (what a task turns its data into; see trm_jax.tasks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from trm_jax.data import maze, puzzle_dataset, sudoku
from trm_jax.data.grids import DihedralAugmenter
from trm_jax.data.text import IGNORE_LABEL, SampleEncoder
from trm_jax.data.tokenizers import grid_tokenizer
from trm_jax.errors import TRMError

SPLITS = ("train", "eval")  # every task's two splits: training data and held-out data


@dataclass
class ArrayDataset:
    """inputs/labels int32 [N, seq_len] (labels IGNORE_LABEL where masked), difficulty float32 [N].

    `texts` holds the raw samples (dicts) row for row when known. `augment`, when set, is
    an online augmentation `(inputs, labels, rng) -> (inputs, labels)` that `BatchIterator`
    applies to each training batch (Sudoku: validity-preserving transforms).
    `puzzle_ids` (int32 [N], optional) is each row's puzzle identifier, the row of the
    model's puzzle-embedding table it uses; batches carry zeros when it is None.

    Memory-mapped integer arrays (`np.memmap`, e.g. an official dataset directory) are kept
    as they are, not copied into int32; `ignore_label_id`, when set, is the stored label
    value that means "masked" (the official builders store 0). Read rows through `rows()`,
    which gives int32 arrays with masked labels as IGNORE_LABEL.
    """

    inputs: np.ndarray
    labels: np.ndarray
    difficulty: np.ndarray
    texts: Optional[list] = None
    augment: Optional[Callable] = field(default=None, repr=False)
    puzzle_ids: Optional[np.ndarray] = None
    ignore_label_id: Optional[int] = None

    def __post_init__(self):
        self.inputs = _token_array(self.inputs)
        self.labels = _token_array(self.labels)
        self.difficulty = np.asarray(self.difficulty, dtype=np.float32).reshape(-1)
        if self.inputs.ndim != 2 or self.inputs.shape != self.labels.shape:
            raise TRMError(f"dataset inputs and labels must both be [N, seq_len], got {self.inputs.shape} "
                           f"and {self.labels.shape}")
        if len(self.difficulty) != len(self.inputs):
            raise TRMError(f"dataset difficulty has {len(self.difficulty)} entries for {len(self.inputs)} rows")
        if self.texts is not None and len(self.texts) != len(self.inputs):
            raise TRMError(f"dataset texts has {len(self.texts)} entries for {len(self.inputs)} rows")
        if self.puzzle_ids is not None:
            self.puzzle_ids = np.asarray(self.puzzle_ids, dtype=np.int32).reshape(-1)
            if len(self.puzzle_ids) != len(self.inputs):
                raise TRMError(f"dataset puzzle_ids has {len(self.puzzle_ids)} entries for {len(self.inputs)} rows")
            if len(self.puzzle_ids) and self.puzzle_ids.min() < 0:
                raise TRMError(f"dataset puzzle_ids must be >= 0, got {int(self.puzzle_ids.min())}")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    def subset(self, indices) -> "ArrayDataset":
        idx = np.asarray(indices, dtype=np.intp)
        texts = None if self.texts is None else [self.texts[i] for i in idx]
        ids = None if self.puzzle_ids is None else self.puzzle_ids[idx]
        return ArrayDataset(self.inputs[idx], self.labels[idx], self.difficulty[idx], texts, self.augment, ids,
                            self.ignore_label_id)

    def rows(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) int32 [len(idx), seq_len] of rows `idx`, masked labels = IGNORE_LABEL."""
        idx = np.asarray(idx, dtype=np.intp)
        inputs = np.asarray(self.inputs[idx], dtype=np.int32)
        labels = np.array(self.labels[idx], dtype=np.int32)  # a copy: callers may write into it
        if self.ignore_label_id is not None:
            labels[labels == self.ignore_label_id] = IGNORE_LABEL
        return inputs, labels

    def puzzle_ids_at(self, idx) -> np.ndarray:
        """int32 puzzle identifiers of rows `idx` (zeros when the dataset has none)."""
        idx = np.asarray(idx, dtype=np.intp)
        if self.puzzle_ids is None:
            return np.zeros(idx.shape, dtype=np.int32)
        return self.puzzle_ids[idx]


def _token_array(x) -> np.ndarray:
    """int32 token array, except a memory-mapped integer array stays mapped (rows() converts)."""
    if isinstance(x, np.memmap) and np.issubdtype(x.dtype, np.integer) and x.dtype.itemsize <= 4:
        return x
    return np.asarray(x, dtype=np.int32)


# ----------------------------------------------------------------------------- text datasets

def make_text_dataset(samples: list, tokenizer, seq_len: int, truncation: str = "truncate") -> ArrayDataset:
    """Tokenize raw samples ({"input","output"} or {"context","query","answer"}) into an ArrayDataset.

    input = tokenized input text (context + query through `prepare_code_input`), padded;
    label = answer tokens + eos, then IGNORE_LABEL. An optional "difficulty" key per
    sample is kept (0 otherwise).
    """
    enc = SampleEncoder(tokenizer, seq_len, truncation)
    n = len(samples)
    inputs = np.empty((n, seq_len), dtype=np.int32)
    labels = np.empty((n, seq_len), dtype=np.int32)
    difficulty = np.zeros(n, dtype=np.float32)
    for i, s in enumerate(samples):
        where = _where(s, i)
        _check_sample(s, where)
        inputs[i], labels[i] = enc.encode(s, where)
        difficulty[i] = float(s.get("difficulty", 0.0))
    enc.report(n)
    return ArrayDataset(inputs, labels, difficulty, list(samples))


def _where(sample, i: int) -> str:
    return sample.get("_where", f"sample {i}") if isinstance(sample, dict) else f"sample {i}"


def _check_sample(s, where: str) -> None:
    if not isinstance(s, dict):
        raise TRMError(f"{where}: expected a dict, got {type(s).__name__}")
    keys = ("query", "answer") if "query" in s else ("input", "output")
    for k in keys:
        if not isinstance(s.get(k), str):
            raise TRMError(f"{where}: needs string fields {keys} (or 'input'/'output'), got keys {sorted(s)}")
    if "query" in s and not isinstance(s.get("context") or "", str):
        raise TRMError(f"{where}: 'context' must be a string")


# ----------------------------------------------------------------------------- sudoku datasets

def sudoku_token_table(tokenizer) -> np.ndarray:
    """int32 [10]: token id of the blank (index 0) and of digits 1..9, via `tokenizer.encode`."""
    table = []
    for ch in sudoku.GRID_SYMBOLS:
        ids = tokenizer.encode(ch)
        if len(ids) != 1:
            raise TRMError(f"the Sudoku task needs a character-level tokenizer (one token per cell), but "
                           f"{getattr(tokenizer, 'name', tokenizer)!r} encodes {ch!r} as {ids}; "
                           "set data.tokenizer: grid (or char / byte)")
        table.append(ids[0])
    return np.asarray(table, dtype=np.int32)


def _pad_grids(grids: np.ndarray, table: np.ndarray, seq_len: int, fill: int) -> np.ndarray:
    """Token ids of int [N,81] grids, right-padded with `fill` to seq_len: int32 [N, seq_len]."""
    if seq_len < 81:
        raise TRMError(f"Sudoku needs seq_len >= 81 (one token per cell), got {seq_len}; set data.seq_len: 81")
    out = np.full((len(grids), seq_len), fill, dtype=np.int32)
    out[:, :81] = table[grids]
    return out


def encode_sudoku_string(s: str, tokenizer=None, seq_len: int = 81) -> np.ndarray:
    """A puzzle string (81 cells, '.' or '0' for blanks) as model input ids int32 [seq_len], for inference."""
    tok = tokenizer if tokenizer is not None else grid_tokenizer()
    return _pad_grids(sudoku.text_to_sudoku(s)[None], sudoku_token_table(tok), seq_len, tok.pad_token_id)[0]


def make_sudoku_dataset(puzzles, solutions, tokenizer, seq_len: int = 81, difficulty=None,
                        augment: bool = False, keep_texts: bool = True) -> ArrayDataset:
    """Tokenized Sudoku: input = the 81 cells of the puzzle, label = the full solution.

    There is no end token: every one of the 81 label positions is supervised. Positions
    past 81 (when seq_len > 81) are padding in the input and IGNORE_LABEL in the label.
    `keep_texts=False` skips the per-row text dicts (large precomputed training sets).
    """
    p = np.asarray(puzzles, dtype=np.int8).reshape(-1, 81)
    s = np.asarray(solutions, dtype=np.int8).reshape(-1, 81)
    table = sudoku_token_table(tokenizer)
    n = len(p)
    inputs = _pad_grids(p, table, seq_len, tokenizer.pad_token_id)
    labels = _pad_grids(s, table, seq_len, IGNORE_LABEL)
    diff = sudoku.givens_difficulty((p > 0).sum(axis=1)) if difficulty is None else difficulty
    texts = ([{"input": a, "output": b} for a, b in zip(sudoku.grids_to_texts(p), sudoku.grids_to_texts(s))]
             if keep_texts else None)
    aug = sudoku.SudokuTokenAugmenter(tuple(int(t) for t in table[1:])) if augment else None
    return ArrayDataset(inputs, labels, np.broadcast_to(np.asarray(diff, np.float32), (n,)).copy(), texts, aug)


# ----------------------------------------------------------------------------- maze datasets

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
    texts = [{"input": x, "output": y} for x, y in zip(maze.maze_texts(q), maze.maze_texts(a))]
    aug = DihedralAugmenter(size) if augment else None
    return ArrayDataset(inputs, labels, diff.copy(), texts, aug)


# ----------------------------------------------------------------------------- official dataset directories

def make_puzzle_dataset(dataset_dir: str, split: str, seq_len: Optional[int] = None) -> ArrayDataset:
    """One split ("train", or "eval" = the official "test") of a directory written by the official
    builders: memory-mapped inputs/labels, per-example puzzle identifiers, the directory's
    ignore_label_id masked (IGNORE_LABEL in batches), difficulty 0."""
    part = puzzle_dataset.read_split(dataset_dir, split)
    meta = part.metadata
    if seq_len is not None and seq_len != meta["seq_len"]:
        raise TRMError(f"{os.path.join(dataset_dir, puzzle_dataset.SPLIT_DIRS[split], 'dataset.json')}: seq_len is "
                       f"{meta['seq_len']} but data.seq_len is {seq_len}; set data.seq_len: {meta['seq_len']}")
    return ArrayDataset(part.inputs, part.labels, np.zeros(len(part.inputs), np.float32),
                        puzzle_ids=part.puzzle_ids, ignore_label_id=meta["ignore_label_id"])


def as_array_dataset(data, name: str = "dataset") -> ArrayDataset:
    """An ArrayDataset from `(inputs, labels)` arrays, a dict with 'inputs' and 'labels' (optionally
    'puzzle_ids', 'difficulty'), or an ArrayDataset (returned as is)."""
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, dict):
        missing = {"inputs", "labels"} - set(data)
        if missing:
            raise TRMError(f"{name}: the dict needs keys 'inputs' and 'labels' (missing {sorted(missing)})")
        inputs, labels = data["inputs"], data["labels"]
        extra = {k: data[k] for k in ("puzzle_ids",) if k in data}
        difficulty = data.get("difficulty")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        (inputs, labels), extra, difficulty = data, {}, None
    else:
        raise TRMError(f"{name}: expected (inputs, labels) arrays, a dict with 'inputs'/'labels' or an "
                       f"ArrayDataset, got {type(data).__name__}")
    inputs = np.asarray(inputs)
    if difficulty is None:
        difficulty = np.zeros(len(inputs), np.float32)
    return ArrayDataset(inputs, np.asarray(labels), np.asarray(difficulty), **extra)
