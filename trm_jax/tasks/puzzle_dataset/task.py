"""The puzzle_dataset task: a directory written by the official TRM dataset builders (train/ and test/
token arrays with puzzle identifiers; format: trm_jax.tasks.puzzle_dataset.files), used as it is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from trm_jax.data.datasets import ArrayDataset
from trm_jax.errors import TRMError
from trm_jax.tasks.base import GridTask, require
from trm_jax.tasks.puzzle_dataset.files import make_puzzle_dataset, puzzle_metadata, puzzle_tokenizer


@dataclass(frozen=True)
class PuzzleDirOptions:
    dataset_dir: Optional[str] = None  # puzzle_dataset: directory with train/ and test/ written by the official builders


class PuzzleDatasetTask(GridTask):
    Options = PuzzleDirOptions

    @classmethod
    def validate(cls, data, path: str = "data") -> None:
        d = data.options.dataset_dir
        require(d is not None, f"{path}.dataset_dir", "task 'puzzle_dataset' needs data.dataset_dir: the directory an "
                "official builder wrote (train/, test/)")
        require(os.path.isdir(d), f"{path}.dataset_dir", f"directory not found: {d}")

    def build_tokenizer(self):
        # ids exactly as the builder wrote them: a character tokenizer of the directory's vocab_size
        return puzzle_tokenizer(puzzle_metadata(self.options.dataset_dir)["vocab_size"])

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        raise TRMError("data.task 'puzzle_dataset' holds token arrays, not text samples; read them with "
                       "trm_jax.data.make_puzzle_dataset(data.dataset_dir, split)")

    def split_dataset(self, split: str, tokenizer, seq_len: int, difficulty: float) -> ArrayDataset:
        return make_puzzle_dataset(self.options.dataset_dir, split, seq_len)
