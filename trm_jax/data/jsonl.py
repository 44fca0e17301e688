"""User datasets as JSONL: one JSON object per line.

Accepted rows (extra keys are kept and ignored):
  {"input": "...", "output": "..."}
  {"context": "...", "query": "...", "answer": "..."}   ("context" may be left out: RAG fills it)
An optional numeric "difficulty" is used for accuracy-by-difficulty.
"""

from __future__ import annotations

import json
import math
import os

from trm_jax.errors import TRMError

_FORMATS = ('each line must be a JSON object {"input": ..., "output": ...} '
            'or {"context": ..., "query": ..., "answer": ...}')


def _check_row(row, path: str, line: int) -> dict:
    where = f"{path}:{line}"
    if not isinstance(row, dict):
        raise TRMError(f"{where}: expected a JSON object, got {type(row).__name__}; {_FORMATS}")
    if "query" in row or "answer" in row:
        required, optional = ("query", "answer"), ("context",)
    elif "input" in row or "output" in row:
        required, optional = ("input", "output"), ()
    else:
        raise TRMError(f"{where}: no 'input'/'output' or 'query'/'answer' keys (found {sorted(row)}); {_FORMATS}")
    for key in required:
        if key not in row:
            raise TRMError(f"{where}: missing key '{key}'; {_FORMATS}")
    for key in required + optional:
        if key in row and not isinstance(row[key], str):
            raise TRMError(f"{where}: '{key}' must be a string, got {type(row[key]).__name__} "
                           f"({json.dumps(row[key])[:40]}); quote it, e.g. \"{key}\": \"7\"")
    if "difficulty" in row:
        d = row["difficulty"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
            raise TRMError(f"{where}: 'difficulty' must be a finite number, got {json.dumps(d)[:40]}")
    return row


def read_jsonl(path: str) -> list[dict]:
    """Read and validate a JSONL dataset; errors name the file and line."""
    if not os.path.isfile(path):
        raise TRMError(f"JSONL file not found: {path}. Set data.train_path / data.eval_path to an existing file.")
    rows = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TRMError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                               "save the file as UTF-8") from None
            if line_no == 1:
                line = line.lstrip("\ufeff")  # editors on Windows often write a byte-order mark
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TRMError(f"{path}:{line_no}: invalid JSON ({e.msg} at column {e.colno}); {_FORMATS}") from None
            rows.append(_check_row(row, path, line_no))
    if not rows:
        raise TRMError(f"{path}: no rows; {_FORMATS}")
    return rows


def write_jsonl(path: str, rows) -> None:
    """Write rows as JSONL (UTF-8, one object per line)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
