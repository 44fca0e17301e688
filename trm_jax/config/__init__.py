"""Config tree: frozen dataclasses loaded from YAML, validated, overridable.

`load_config(path, overrides)` is the one entry point; `TRMConfig.from_dict` turns a nested dict into
the tree, rejecting unknown keys (with a did-you-mean) and wrong types with the full key path in the
message. The schema: trm_jax.config.schema; YAML and `--set` overrides: trm_jax.config.loader; dict <->
dataclass coercion: trm_jax.config.coerce. A task's own `data` keys stay data here
(`DataConfig.options`): the task parses and checks them when it is built (`get_task(config)`).
"""

from trm_jax.config.coerce import build, coerce, declared_keys, to_plain
from trm_jax.config.loader import apply_overrides, load_config
from trm_jax.config.schema import (
    DEFAULT_TASK,
    EVAL_METRIC_MODES,
    CurriculumConfig,
    CurriculumStage,
    DataConfig,
    DistributedConfig,
    EarlyStoppingConfig,
    LoggingConfig,
    ModelConfig,
    MonitoringConfig,
    RAGConfig,
    TaskOptions,
    TrainingConfig,
    TRMConfig,
    WandbConfig,
    check,
)

__all__ = [
    "DEFAULT_TASK", "EVAL_METRIC_MODES", "CurriculumConfig", "CurriculumStage", "DataConfig", "DistributedConfig",
    "EarlyStoppingConfig", "LoggingConfig", "ModelConfig", "MonitoringConfig", "RAGConfig", "TRMConfig",
    "TaskOptions", "TrainingConfig", "WandbConfig", "apply_overrides", "build", "check", "coerce", "declared_keys",
    "load_config", "to_plain",
]
