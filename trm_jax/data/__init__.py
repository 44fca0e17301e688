"""Data every task shares: ArrayDataset and its builders, iterators, tokenizers, text utilities, file and
CSV helpers, grid transforms; and the domain libraries the tasks use (code-task facts, Sudoku, mazes, ARC,
official dataset directories), which know nothing of configs. Config-facing entry points live in
trm_jax.tasks."""

from trm_jax.data.code_task import code_task_corpus, code_task_facts, generate_code_samples
from trm_jax.data.datasets import (
    SPLITS,
    ArrayDataset,
    as_array_dataset,
    encode_sudoku_string,
    make_maze_dataset,
    make_puzzle_dataset,
    make_sudoku_dataset,
    make_text_dataset,
)
from trm_jax.data.grids import DihedralAugmenter, dihedral_permutations, dihedral_transform
from trm_jax.data.iterators import BatchIterator, eval_batches, num_eval_batches
from trm_jax.data.jsonl import read_jsonl, write_jsonl
from trm_jax.data.maze import MAZE_CHARSET, generate_mazes, maze_tokenizer, read_maze_csv, write_maze_csv
from trm_jax.data.puzzle_dataset import write_puzzle_dataset
from trm_jax.data.sudoku import (
    SAMPLE_CSV as SUDOKU_SAMPLE_CSV,
    augment_sudoku,
    count_solutions,
    format_sudoku,
    generate_sudoku,
    load_or_generate_sudoku,
    read_sudoku_csv,
    solve_sudoku_string,
    sudoku_to_text,
    text_to_sudoku,
    with_augmented_copies,
    write_sudoku_csv,
)
from trm_jax.data.text import (
    IGNORE_LABEL,
    decode_prediction,
    pad_sequence,
    prepare_code_input,
    tokenize_and_pad,
)
from trm_jax.data.tokenizers import CharTokenizer, HFTokenizer, load_tokenizer, save_tokenizer


__all__ = [
    "IGNORE_LABEL", "MAZE_CHARSET", "SPLITS", "SUDOKU_SAMPLE_CSV", "ArrayDataset", "BatchIterator", "CharTokenizer",
    "DihedralAugmenter", "HFTokenizer", "as_array_dataset", "augment_sudoku", "code_task_corpus", "code_task_facts",
    "count_solutions", "decode_prediction", "dihedral_permutations", "dihedral_transform", "encode_sudoku_string",
    "eval_batches", "format_sudoku", "generate_code_samples", "generate_mazes", "generate_sudoku",
    "load_or_generate_sudoku", "load_tokenizer", "make_maze_dataset", "make_puzzle_dataset", "make_sudoku_dataset",
    "make_text_dataset", "maze_tokenizer", "num_eval_batches", "pad_sequence", "prepare_code_input", "read_jsonl",
    "read_maze_csv", "read_sudoku_csv", "save_tokenizer", "solve_sudoku_string", "sudoku_to_text", "text_to_sudoku",
    "tokenize_and_pad", "with_augmented_copies", "write_jsonl", "write_maze_csv", "write_puzzle_dataset",
    "write_sudoku_csv",
]
