"""Which Task class a task name (`data.task`) names: a built-in one, an import path
"package.module:TaskClass", or a name an installed package declares in the `trm_jax.tasks` entry-point
group. The one place that reads a task name; it imports no task (classes are imported on first use,
and importlib caches them), so the task base class can ask it for the other tasks' keys."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata

from trm_jax.config import DEFAULT_TASK
from trm_jax.errors import ConfigError

BUILTIN_TASKS = {  # name -> "module:Class"; adding a built-in task is one line here plus its module
    "code": "trm_jax.tasks.code.task:CodeTask",
    "jsonl": "trm_jax.tasks.jsonl:JsonlTask",
    "sudoku": "trm_jax.tasks.sudoku.task:SudokuTask",
    "maze": "trm_jax.tasks.maze.task:MazeTask",
    "arc": "trm_jax.tasks.arc.task:ArcTask",
    "puzzle_dataset": "trm_jax.tasks.puzzle_dataset.task:PuzzleDatasetTask",
}
ENTRY_POINT_GROUP = "trm_jax.tasks"
KEY = "config key 'data.task'"


def task_names() -> tuple[str, ...]:
    """The built-in task names, then those installed packages declare (entry points)."""
    return tuple(BUILTIN_TASKS) + tuple(n for n in _entry_points() if n not in BUILTIN_TASKS)


def resolve(name: str) -> type:
    """The class `data.task` names (not yet checked to be a Task: trm_jax.tasks.task_class does that);
    ConfigError (with a did-you-mean) when there is none."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{KEY}: must be a task name or an import path 'package.module:TaskClass', got {name!r}")
    if name in BUILTIN_TASKS:
        return _import(BUILTIN_TASKS[name], name)
    if ":" in name:
        return _import(name, name)
    spec = _entry_points().get(name)
    if spec is not None:
        return _import(spec, name)
    names = task_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{KEY}: unknown task {name!r}.{hint} Tasks: {', '.join(names)}; or give the import path "
                      "of your own Task subclass, e.g. 'my_package.my_module:MyTask'")


def _entry_points() -> dict:
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _import(spec: str, name: str) -> type:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"{KEY}: {name!r} is not an import path 'package.module:TaskClass'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise  # the task's module exists but one of its own imports failed: that traceback is the news
        raise ConfigError(f"{KEY}: no module {module_name!r} for task {name!r}; put its package on the Python "
                          "path (e.g. PYTHONPATH) or fix the import path") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"{KEY}: module {module_name!r} has no {class_name!r} (task {name!r})")
    return cls


__all__ = ["BUILTIN_TASKS", "DEFAULT_TASK", "ENTRY_POINT_GROUP", "resolve", "task_names"]
