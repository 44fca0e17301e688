"""Sudoku: text I/O, reference and batched solvers, generator, cache, augmentations,
Sudoku-Extreme CSV. Grids are flat int8 arrays of 81 cells, row-major, 0 = blank.

Modules, one job each: `bitmasks` (grid geometry, candidate masks), `text`, `validity`,
`solver` (reference, one puzzle at a time), `batch_solver` (vectorised search),
`generator`, `cache`, `augment`, `extreme_csv`, `extreme_train_set` (the official
1k x 1000-augmentation training set).
"""

from trm_jax.tasks.puzzle_csv import CSV_HEADER
from trm_jax.tasks.sudoku.augment import (SudokuTokenAugmenter, apply_transforms, augment_sudoku,
                                          random_cell_permutations, random_digit_maps)
from trm_jax.tasks.sudoku.batch_solver import count_solutions_batch, solve_batch
from trm_jax.tasks.sudoku.bitmasks import CELL_UNITS, UNITS
from trm_jax.tasks.sudoku.cache import CACHE_VERSION, default_cache_dir, load_or_generate_sudoku
from trm_jax.tasks.sudoku.extreme_csv import SAMPLE_CSV, SudokuCSV, rating_difficulty, read_sudoku_csv, write_sudoku_csv
from trm_jax.tasks.sudoku.extreme_train_set import with_augmented_copies
from trm_jax.tasks.sudoku.generator import EASY_GIVENS, HARD_GIVENS, generate_sudoku, givens_difficulty, target_givens
from trm_jax.tasks.sudoku.solver import count_solutions, solve_grid, solve_sudoku_string
from trm_jax.tasks.sudoku.text import GRID_SYMBOLS, format_sudoku, grids_to_texts, sudoku_to_text, text_to_sudoku
from trm_jax.tasks.sudoku.validity import is_valid_solution, matches_givens, valid_solutions

__all__ = [
    "CACHE_VERSION", "CELL_UNITS", "CSV_HEADER", "EASY_GIVENS", "GRID_SYMBOLS", "HARD_GIVENS", "SAMPLE_CSV",
    "UNITS", "SudokuCSV", "SudokuTokenAugmenter", "apply_transforms", "augment_sudoku", "count_solutions",
    "count_solutions_batch", "default_cache_dir", "format_sudoku", "generate_sudoku", "givens_difficulty",
    "grids_to_texts", "is_valid_solution", "load_or_generate_sudoku", "matches_givens", "random_cell_permutations",
    "random_digit_maps", "rating_difficulty", "read_sudoku_csv", "solve_batch", "solve_grid", "solve_sudoku_string",
    "sudoku_to_text", "target_givens", "text_to_sudoku", "valid_solutions", "with_augmented_copies", "write_sudoku_csv",
]
