"""Tasks: one module (or subpackage) per task family, each a `trm_jax.tasks.base.Task` subclass found
through the registry (`trm_jax.task_registry`, re-exported here): code, jsonl, sudoku, maze, arc and
puzzle_dir (data.task "puzzle_dataset"). Adding a task is one module plus one registry line, or, outside
the package, `data.task: "package.module:TaskClass"`.

Below, config-level entry points for callers that hold a config rather than a task.
"""

from __future__ import annotations

from typing import Optional

from trm_jax.task_registry import BUILTIN_TASKS, DEFAULT_TASK, ENTRY_POINT_GROUP, get_task, task_class, task_names


def build_datasets(config, tokenizer, *, seq_len: Optional[int] = None, difficulty: Optional[float] = None,
                   samples_transform=None):
    """(train, eval) ArrayDatasets of `config`'s task at a stage's seq_len and difficulty (default: data.*).

    `samples_transform` (list[dict] -> list[dict]) edits text samples before tokenization, e.g. the RAG
    wrapper filling "context" (text tasks only)."""
    return get_task(config).datasets(tokenizer, seq_len=seq_len, difficulty=difficulty,
                                     samples_transform=samples_transform)


def load_raw_samples(config, split: str, difficulty: Optional[float] = None) -> list:
    """The text samples of `split` ("train" or "eval") of `config`'s task, before tokenization."""
    return get_task(config).samples(split, difficulty)


def load_tokenizer_for_config(config, save_dir: Optional[str] = None):
    """`(tokenizer, vocab_size, pad_token_id)` of `config`'s task; a tokenizer saved in `save_dir` wins (a
    resumed run keeps its exact tokenizer), a new one is saved there."""
    return get_task(config).tokenizer(save_dir)


__all__ = ["BUILTIN_TASKS", "DEFAULT_TASK", "ENTRY_POINT_GROUP", "build_datasets", "get_task", "load_raw_samples",
           "load_tokenizer_for_config", "task_class", "task_names"]
