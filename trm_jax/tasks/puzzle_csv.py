"""The `source,question,answer,rating` CSV layout shared by the Sudoku and maze tasks (the official
Sudoku-Extreme and Maze-Hard files): rows with file:line errors for a missing file, a wrong header, a
wrong column count or a bad rating."""

from __future__ import annotations

import csv
import os
from typing import Iterator

from trm_jax.errors import TRMError

CSV_HEADER = ["source", "question", "answer", "rating"]


def read_rows(path: str, what: str) -> Iterator[tuple[int, str, str, str, float]]:
    """(line, source, question, answer, rating) for each non-blank row after the header.

    `what` names the data in errors ("Sudoku", "maze"). An empty rating reads as 0.
    """
    if not os.path.isfile(path):
        raise TRMError(f"{what} CSV not found: {path}. Set data.train_path / data.eval_path to an existing file.")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TRMError(f"{path}: the file is empty; expected a header line 'source,question,answer,rating'")
        if [h.strip().lower() for h in header] != CSV_HEADER:
            raise TRMError(f"{path}:1: expected the header 'source,question,answer,rating', got {','.join(header)!r}")
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 4:
                raise TRMError(f"{path}:{line}: expected 4 columns (source,question,answer,rating), got {len(row)}")
            source, question, answer, rating = row
            try:
                value = float(rating) if rating.strip() else 0.0
            except ValueError:
                raise TRMError(f"{path}:{line}: rating must be a number, got {rating!r}") from None
            yield line, source, question, answer, value


def write_rows(path: str, rows) -> None:
    """Write (source, question, answer, rating) rows under the header; integral ratings as ints."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_HEADER)
        for source, question, answer, rating in rows:
            w.writerow([source, question, answer, int(rating) if float(rating).is_integer() else float(rating)])
