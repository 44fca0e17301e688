"""ArrayDataset: fixed-shape token arrays (what every task turns its data into; see trm_jax.tasks), built
from text samples or from arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from trm_jax.data.text import IGNORE_LABEL, SampleEncoder
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
