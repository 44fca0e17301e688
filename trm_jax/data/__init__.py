"""Data: tokenizers and text utilities; tasks: code, Sudoku, maze, user JSONL, official dataset
directories; datasets and iterators."""

from trm_jax.data.code_task import code_task_corpus, code_task_facts, generate_code_samples
from trm_jax.data.datasets import (
    ArrayDataset,
    as_array_dataset,
    build_datasets,
    encode_sudoku_string,
    load_raw_samples,
    load_tokenizer_for_config,
    make_maze_dataset,
    make_puzzle_dataset,
    make_sudoku_dataset,
    make_text_dataset,
    tokenizer_corpus,
)
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
    "IGNORE_LABEL", "MAZE_CHARSET", "SUDOKU_SAMPLE_CSV", "ArrayDataset", "as_array_dataset", "BatchIterator", "CharTokenizer", "HFTokenizer",
    "augment_sudoku", "build_datasets", "code_task_corpus", "code_task_facts", "count_solutions",
    "decode_prediction", "encode_sudoku_string", "eval_batches", "format_sudoku", "generate_code_samples",
    "generate_mazes", "generate_sudoku", "load_or_generate_sudoku", "load_raw_samples", "load_tokenizer",
    "load_tokenizer_for_config", "make_maze_dataset", "make_puzzle_dataset", "make_sudoku_dataset",
    "maze_tokenizer", "make_text_dataset", "num_eval_batches",
    "pad_sequence", "prepare_code_input", "read_jsonl", "read_maze_csv", "read_sudoku_csv", "save_tokenizer",
    "solve_sudoku_string", "sudoku_to_text", "text_to_sudoku", "tokenize_and_pad", "tokenizer_corpus",
    "with_augmented_copies", "write_jsonl", "write_maze_csv", "write_puzzle_dataset", "write_sudoku_csv",
]
