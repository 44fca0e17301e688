"""The maze task (Maze-Hard): the question grid in, the grid with the shortest path marked 'o' out;
generated mazes or a Maze-Hard CSV (generator, charset and CSV format: trm_jax.tasks.maze.mazes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.files import read_cached
from trm_jax.errors import TRMError
from trm_jax.tasks.base import GridTask, require
from trm_jax.tasks.maze import mazes as maze
from trm_jax.tasks.maze.mazes import make_maze_dataset


@dataclass(frozen=True)
class MazeOptions:
    maze_size: int = 30  # maze: generated grid side (Maze-Hard: 30x30, seq_len 900)
    maze_min_path_len: Optional[int] = None  # maze: generated shortest S-G path of at least this many moves (Maze-Hard ~110+)


class MazeTask(GridTask):
    Options = MazeOptions
    answer_kind = "maze_grid"

    def validate(self) -> None:
        o = self.options
        require(o.maze_size >= 3, "data.maze_size", f"must be >= 3, got {o.maze_size}")
        require(o.maze_min_path_len is None or o.maze_min_path_len > 0, "data.maze_min_path_len",
                f"must be > 0 or null, got {o.maze_min_path_len}")

    def build_tokenizer(self):
        name = self.data.tokenizer
        # the 6-token maze vocabulary (official ids) unless another tokenizer is asked for
        return maze.maze_tokenizer() if name in ("char", "maze") else self.named_tokenizer(name)

    def tokenizer_corpus(self) -> list[str]:
        return list(maze.MAZE_CHARSET)

    def arrays(self, split: str):
        """(questions, answers int8 [N, size*size], difficulty) of `split`: generated, or from the CSV."""
        data, o = self.data, self.options
        if data.train_path is None:
            q, a, steps = maze.generated_maze_arrays_cached(self.split_size(split), o.maze_size,
                                                            self.generated_seed(split), o.maze_min_path_len)
            return q, a, maze.maze_difficulty(steps, o.maze_size)
        csv = read_cached(maze.read_maze_csv, self.split_file(split))
        idx = self.file_rows(split, len(csv.questions))
        return csv.questions[idx], csv.answers[idx], maze.maze_difficulty(csv.ratings[idx], csv.size)

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        """{"input", "output", "difficulty"}: row-major grids over "# SGo"."""
        q, a, d = self.arrays(split)
        return [{"input": x, "output": y, "difficulty": float(v)}
                for x, y, v in zip(maze.maze_texts(q), maze.maze_texts(a), d)]

    def split_dataset(self, split: str, tokenizer, seq_len: int, difficulty: float) -> ArrayDataset:
        q, a, d = self.arrays(split)
        return make_maze_dataset(q, a, seq_len, d, augment=self.data.augment and split == "train")

    def dataset_from_file(self, path: str, tokenizer, seq_len: int, samples_transform=None) -> ArrayDataset:
        """A Maze-Hard CSV."""
        mazes = maze.read_maze_csv(path)
        return make_maze_dataset(mazes.questions, mazes.answers, seq_len, size=mazes.size)

    def encode(self, queries: list, tokenizer, seq_len: int, retriever=None) -> tuple[np.ndarray, list]:
        """A query is the question grid, row-major '# SG' characters."""
        cells = maze.maze_ids(queries, where="maze text")
        if cells.shape[1] > seq_len:
            raise TRMError(f"a maze of {cells.shape[1]} cells does not fit this run's seq_len {seq_len}")
        ids = np.zeros((len(queries), seq_len), np.int32)  # pad 0, as the maze dataset pads
        ids[:, :cells.shape[1]] = cells
        return ids, [[] for _ in queries]

    def decode(self, tokens: np.ndarray, tokenizer, query) -> str:
        """The question's cells with the path marked 'o'."""
        return maze.maze_texts(np.asarray(tokens)[None, :len(query)])[0]

    def verify(self, query, answer) -> bool:
        """Whether `answer` (the grid `infer` returns) solves the maze `query` (the question grid, row-major
        '# SG' characters): it keeps the walls, S and G, and its 'o' cells with S and G form a simple path
        from S to G through 4-neighbours over open cells (`mazes.solves_maze`)."""
        question = maze.maze_ids([query], where="maze text")[0]
        try:
            grid = maze.maze_ids([answer], where="maze answer")[0]
        except (TRMError, TypeError):  # characters outside the charset, or not a string: not a solution
            return False
        return maze.solves_maze(question, grid)

    def verifier(self, tokenizer) -> Callable:
        """`verify` on token rows (the official ids, whatever the tokenizer): the maze is the row's leading
        non-pad cells, as the task pads its inputs with 0 after the grid."""

        def check(input_row, answer_row) -> bool:
            row = np.asarray(input_row)
            cells = int(np.argmax(row == 0)) if (row == 0).any() else row.size
            return maze.solves_maze(row[:cells], np.asarray(answer_row)[:cells])

        return check
