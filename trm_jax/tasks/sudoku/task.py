"""The Sudoku task: 81-cell grids in, solved grids out; generated puzzles or a Sudoku-Extreme CSV
(the grids, solver, generator and CSV format: trm_jax.tasks.sudoku)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.files import read_cached
from trm_jax.tasks import sudoku
from trm_jax.tasks.base import GridTask, require
from trm_jax.errors import TRMError
from trm_jax.tasks.sudoku.dataset import encode_sudoku_string, make_sudoku_dataset, sudoku_token_table
from trm_jax.tasks.sudoku.validity import solves

logger = logging.getLogger(__name__)

MAX_TEXT_ROWS = 100_000  # larger training sets keep no per-row text dicts (memory)


@dataclass(frozen=True)
class SudokuOptions:
    num_aug: int = 0  # sudoku: precomputed augmentations after each training puzzle (official build_sudoku_dataset.py --num-aug 1000)


class SudokuTask(GridTask):
    Options = SudokuOptions
    answer_kind = "sudoku_grid"

    def validate(self) -> None:
        n = self.options.num_aug
        require(n >= 0, "data.num_aug", f"must be >= 0, got {n}")

    def build_tokenizer(self):
        # "char" becomes "grid", the 11-token vocabulary of the benchmark
        return self.named_tokenizer("grid" if self.data.tokenizer == "char" else self.data.tokenizer)

    def tokenizer_corpus(self) -> list[str]:
        return list(sudoku.GRID_SYMBOLS)

    def arrays(self, split: str, difficulty: float):
        """(puzzles, solutions int8 [N, 81], per-puzzle difficulty) of `split`: generated, or from the CSV."""
        data = self.data
        if data.train_path is None:
            n = self.split_size(split)
            p, s = sudoku.load_or_generate_sudoku(n, self.generated_seed(split), float(difficulty), data.cache_dir,
                                                  progress=n >= 5000)
            return p, s, sudoku.givens_difficulty((p > 0).sum(axis=1))
        csv = read_cached(sudoku.read_sudoku_csv, self.split_file(split))
        idx = self.file_rows(split, len(csv.puzzles))
        return csv.puzzles[idx], csv.solutions[idx], sudoku.rating_difficulty(csv.ratings[idx])

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        """{"input", "output", "difficulty"}: 81-character grids ('.' for blanks)."""
        p, s, d = self.arrays(split, self.stage(None, difficulty)[1])
        return [{"input": a, "output": b, "difficulty": float(x)}
                for a, b, x in zip(sudoku.grids_to_texts(p), sudoku.grids_to_texts(s), d)]

    def split_dataset(self, split: str, tokenizer, seq_len: int, difficulty: float) -> ArrayDataset:
        """Training with data.num_aug > 0 is the official Sudoku-Extreme construction: each (subsampled,
        data.max_train_rows) puzzle followed by num_aug precomputed transforms of it; eval is never augmented."""
        num_aug = self.options.num_aug
        p, s, d = self.arrays(split, difficulty)
        if split == "train" and num_aug > 0:
            p, s, source = sudoku.with_augmented_copies(p, s, num_aug, seed=self.config.seed)
            d = d[source]
            logger.info("Sudoku training set: %d puzzles x (1 + %d augmentations) = %d rows",
                        len(source) // (1 + num_aug), num_aug, len(p))
        return make_sudoku_dataset(p, s, tokenizer, seq_len, d, augment=self.data.augment and split == "train",
                                   keep_texts=len(p) <= MAX_TEXT_ROWS)

    def dataset_from_file(self, path: str, tokenizer, seq_len: int, samples_transform=None) -> ArrayDataset:
        """A Sudoku-Extreme CSV."""
        csv = sudoku.read_sudoku_csv(path)
        return make_sudoku_dataset(csv.puzzles, csv.solutions, tokenizer, seq_len,
                                   sudoku.rating_difficulty(csv.ratings))

    def encode(self, queries: list, tokenizer, seq_len: int, retriever=None) -> tuple[np.ndarray, list]:
        """A query is a puzzle string: 81 cells, '.' or '0' for blanks."""
        return np.stack([encode_sudoku_string(q, tokenizer, seq_len) for q in queries]), [[] for _ in queries]

    def decode(self, tokens: np.ndarray, tokenizer, query) -> str:
        """The solved grid as 81 digits."""
        return tokenizer.decode(tokens[:81]).replace(".", "0")

    def verify(self, query, answer) -> bool:
        """Whether `answer` (81 digits, as `infer` returns it) solves the puzzle `query` (81 cells, '.' or '0'
        for blanks): a complete grid obeying the rules that keeps every given."""
        puzzle = sudoku.text_to_sudoku(query)
        try:
            grid = sudoku.text_to_sudoku(answer)
        except TRMError:  # not 81 cells of digits: not a solution
            return False
        return solves(puzzle, grid)

    def verifier(self, tokenizer) -> Callable:
        """`verify` on token rows: cells are the first 81 tokens, read back through the tokenizer's cell table."""
        table = sudoku_token_table(tokenizer)
        value = np.full(max(int(table.max()) + 1, int(tokenizer.vocab_size)), -1, np.int64)  # token -> cell value
        value[table] = np.arange(10)

        def cells(row) -> np.ndarray:
            row = np.asarray(row)[:81]
            ok = (row >= 0) & (row < len(value))
            return np.where(ok, value[np.where(ok, row, 0)], -1) if row.size == 81 else np.full(81, -1)

        return lambda input_row, answer_row: solves(cells(input_row), cells(answer_row))
