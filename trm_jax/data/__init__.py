"""What every task shares: ArrayDataset, batch iterators, tokenizers, text utilities, files and JSONL,
grid transforms. A task's own code lives in trm_jax.tasks.<task> (the official puzzle CSV layout that the
Sudoku and maze tasks share: trm_jax.tasks.puzzle_csv)."""

from trm_jax.data.datasets import SPLITS, ArrayDataset, as_array_dataset, make_text_dataset
from trm_jax.data.grids import DihedralAugmenter, dihedral_permutations, dihedral_transform
from trm_jax.data.iterators import BatchIterator, eval_batches, num_eval_batches
from trm_jax.data.jsonl import read_jsonl, write_jsonl
from trm_jax.data.text import IGNORE_LABEL, decode_prediction, pad_sequence, prepare_code_input, tokenize_and_pad
from trm_jax.data.tokenizers import CharTokenizer, HFTokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "IGNORE_LABEL", "SPLITS", "ArrayDataset", "BatchIterator", "CharTokenizer", "DihedralAugmenter", "HFTokenizer",
    "as_array_dataset", "decode_prediction", "dihedral_permutations", "dihedral_transform", "eval_batches",
    "load_tokenizer", "make_text_dataset", "num_eval_batches", "pad_sequence", "prepare_code_input", "read_jsonl",
    "save_tokenizer", "tokenize_and_pad", "write_jsonl",
]
