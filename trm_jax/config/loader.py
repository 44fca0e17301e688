"""Loading a config: a YAML file (None = the defaults) plus `--set key.path=value` overrides, into a
TRMConfig (coercion and key checks: trm_jax.config.coerce; each section's values: the schema)."""

from __future__ import annotations

import os
from typing import Any

import yaml

from trm_jax.config.schema import TRMConfig
from trm_jax.errors import ConfigError


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply `a.b=c` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.path=value, e.g. training.steps=100")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML ({e})") from None
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    return raw


def load_config(path: str | os.PathLike | None = None, overrides=()) -> TRMConfig:
    """Load a YAML config and apply `key.path=value` overrides (the command line's `--set`).

    The keys every task shares are checked here; a task's own `data` keys when the task is built
    (`trm_jax.tasks.get_task(config)`).

    Args:
        path: A YAML file; None = the built-in defaults.
        overrides: `"key.path=value"` strings, each value parsed as YAML (`"training.steps=100"`,
            `"curriculum.stages=[]"`), applied in order.

    Returns:
        The validated `TRMConfig`.

    Raises:
        ConfigError: The file is missing or not valid YAML, an override is malformed, a key is unknown or
            a value is bad (the message names the key path), or `training.steps` is overridden while
            `curriculum.stages` set the run's length.
    """
    raw: Any = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}. Pass --config with an existing YAML file.")
        with open(path) as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections at the top level")
    config = TRMConfig.from_dict(apply_overrides(raw, list(overrides)))
    if config.curriculum.stages and any(o.split("=", 1)[0].strip() == "training.steps" for o in overrides):
        # stages give the run's length; silently training for their steps instead would surprise
        raise ConfigError(f"override 'training.steps': the config's curriculum.stages ({len(config.curriculum.stages)} "
                          "stage(s)) give the run's length, so training.steps would be ignored. Add --set "
                          "curriculum.stages=[] to train one stage of training.steps, or set the stages' steps")
    return config
