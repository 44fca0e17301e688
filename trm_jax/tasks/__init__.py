"""Tasks, one subpackage (or module) per task family holding all of its code, and the registry:
`task_class(name)` finds the Task class `data.task` names (trm_jax.tasks.registry: a built-in name, an
import path "package.module:TaskClass", or an entry point of the `trm_jax.tasks` group) and
`get_task(config)` builds it, which parses and checks the task's own `data` keys.

A task is a `trm_jax.tasks.base.Task` subclass; a built-in task's name is its module's name.
`trm_jax.tasks.puzzle_csv` is no task: the official puzzle CSV layout that the Sudoku and maze tasks share.
"""

from __future__ import annotations

from trm_jax.errors import ConfigError
from trm_jax.tasks.base import Task
from trm_jax.tasks.registry import BUILTIN_TASKS, DEFAULT_TASK, ENTRY_POINT_GROUP, KEY, resolve, task_names


def task_class(name: str) -> type:
    """The Task class `data.task` names.

    Args:
        name: A built-in task name, an import path "package.module:TaskClass", or the name of an entry
            point of the `trm_jax.tasks` group.

    Returns:
        The `Task` subclass.

    Raises:
        ConfigError: No task has that name (with a did-you-mean), or the class is not a `Task`.
    """
    cls = resolve(name)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"{KEY}: {name!r} is not a subclass of trm_jax.tasks.base.Task")
    return cls


def get_task(config) -> Task:
    """The Task of a run config: what generic code asks instead of reading the task name.

    Building it parses and checks the task's own keys (a warning for keys of another task).

    Args:
        config: A `TRMConfig`; `data.task` names the task.

    Returns:
        The `Task`; its `.config` is the config with just the task's own keys, parsed.

    Raises:
        ConfigError: No such task, or a bad key of the task (the message names the key).
    """
    return task_class(config.data.task)(config)


__all__ = ["BUILTIN_TASKS", "DEFAULT_TASK", "ENTRY_POINT_GROUP", "Task", "get_task", "task_class", "task_names"]
