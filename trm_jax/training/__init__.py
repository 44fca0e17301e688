"""Training: train state + EMA, pmapped deep-supervision step, Trainer loop and callbacks, curriculum stages,
Orbax checkpoints, run directory and metrics JSONL, trackers and resource monitor, test-time adaptation."""

from trm_jax.config import CurriculumStage
from trm_jax.training.callbacks import Callback, EarlyStopping, KeepBest, TimeBudget
from trm_jax.training.checkpoints import Checkpointer
from trm_jax.training.evaluation import summarize
from trm_jax.training.monitor import ResourceMonitor
from trm_jax.training.run_dir import TRMTrainingLogger, read_metrics
from trm_jax.training.stages import CurriculumScheduler, ResolvedStage, create_model, create_tokenizer, embed_params
from trm_jax.training.state import (LRSchedule, TrainState, ema_decay_at, ema_update, make_optimizer, make_train_state,
                                    scale_by_adam_atan2)
from trm_jax.training.step import TrainCarry, make_eval_step, make_train_step
from trm_jax.training.trainer import Trainer, TrainResult, as_config, create_trainer

__all__ = [
    "Callback", "Checkpointer", "CurriculumScheduler", "CurriculumStage", "EarlyStopping", "KeepBest", "LRSchedule",
    "ResolvedStage", "ResourceMonitor", "TRMTrainingLogger", "TimeBudget", "TrainCarry", "TrainResult", "TrainState",
    "Trainer", "as_config", "create_model", "create_tokenizer", "create_trainer", "ema_decay_at", "ema_update",
    "embed_params", "make_eval_step", "make_optimizer", "make_train_state", "make_train_step", "read_metrics",
    "scale_by_adam_atan2", "summarize",
]
