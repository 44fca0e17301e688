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
    """The directory is read for training and evaluation only: a trained model answers without it (its
    tokenizer is saved with it, or follows from model.num_tokens), so a pretrained directory loads where
    the dataset directory does not exist."""

    Options = PuzzleDirOptions
    machine_local_keys = GridTask.machine_local_keys + ("data.dataset_dir",)

    def validate(self) -> None:
        d = self.options.dataset_dir
        require(d is None or os.path.isdir(d), "data.dataset_dir", f"directory not found: {d}")

    def dataset_dir(self) -> str:
        """data.dataset_dir, which reading the data needs."""
        d = self.options.dataset_dir
        require(d is not None, "data.dataset_dir", "task 'puzzle_dataset' needs data.dataset_dir: the directory an "
                "official builder wrote (train/, test/)")
        return d

    def build_tokenizer(self):
        # ids exactly as the builder wrote them: a character tokenizer of the directory's vocab_size, or,
        # for a trained model without its directory, of the model's vocabulary
        num_tokens = self.config.model.num_tokens
        if self.options.dataset_dir is None and num_tokens:
            return puzzle_tokenizer(num_tokens)
        return puzzle_tokenizer(puzzle_metadata(self.dataset_dir())["vocab_size"])

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        raise TRMError("data.task 'puzzle_dataset' holds token arrays, not text samples; read them with "
                       "trm_jax.tasks.puzzle_dataset.files.make_puzzle_dataset(data.dataset_dir, split)")

    def split_dataset(self, split: str, tokenizer, seq_len: int, difficulty: float) -> ArrayDataset:
        return make_puzzle_dataset(self.dataset_dir(), split, seq_len)
