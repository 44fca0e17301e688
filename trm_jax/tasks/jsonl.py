"""The jsonl task: your own data, rows {"input", "output"} or {"context", "query", "answer"} of a JSONL file
(trm_jax.data.jsonl); data.eval_path, or a seeded slice of data.train_path, is held out."""

from __future__ import annotations

from typing import Optional

from trm_jax.data.jsonl import read_jsonl
from trm_jax.tasks.base import Task, require


class JsonlTask(Task):
    uses_retrieval = True

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        """The file's rows of `split` (difficulty: the rows' own "difficulty" keys)."""
        # checked here, not when the task is built: a trained model answers without its training file
        require(self.data.train_path is not None, "data.train_path", "task 'jsonl' needs data.train_path pointing "
                "to a JSONL file")
        rows = read_jsonl(self.split_file(split))
        return [rows[i] for i in self.file_rows(split, len(rows))]
