"""Training: train state + EMA, pmapped deep-supervision step, Trainer loop and callbacks, curriculum,
Orbax checkpoints, metrics JSONL, trackers and resource monitor."""

from trm_jax.config import CurriculumStage
from trm_jax.training.callbacks import Callback, EarlyStopping, KeepBest, TimeBudget
from trm_jax.training.checkpoint import Checkpointer
from trm_jax.training.curriculum import CurriculumScheduler, ResolvedStage, embed_params
from trm_jax.training.factory import (as_config, create_model, create_tokenizer, create_trainer, make_model_from_config,
                                      make_tokenizer, make_trainer)
from trm_jax.training.metrics import TRMTrainingLogger, read_metrics, summarize
from trm_jax.training.monitor import ResourceMonitor
from trm_jax.training.state import (LRSchedule, TrainState, create_train_state, ema_decay_at, ema_update,
                                    make_optimizer, make_train_state, scale_by_adam_atan2)
from trm_jax.training.step import TrainCarry, make_eval_step, make_train_step
from trm_jax.training.trainer import Trainer, TrainResult

__all__ = [
    "Callback", "Checkpointer", "CurriculumScheduler", "CurriculumStage", "EarlyStopping", "KeepBest", "LRSchedule",
    "ResolvedStage", "ResourceMonitor", "TRMTrainingLogger", "TimeBudget", "TrainCarry", "TrainResult", "TrainState",
    "Trainer", "as_config", "create_model", "create_tokenizer", "create_train_state", "create_trainer", "ema_decay_at",
    "ema_update", "embed_params", "make_eval_step", "make_model_from_config", "make_optimizer", "make_tokenizer",
    "make_train_state", "make_train_step", "make_trainer", "read_metrics", "scale_by_adam_atan2", "summarize",
]
