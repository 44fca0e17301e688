"""Training: train state + EMA, pmapped deep-supervision step, Trainer loop, curriculum, Orbax
checkpoints, metrics JSONL and resource monitor."""

from trm_jax.config import CurriculumStage
from trm_jax.training.checkpoint import Checkpointer
from trm_jax.training.curriculum import CurriculumScheduler, ResolvedStage, embed_params
from trm_jax.training.factory import as_config, create_model, create_tokenizer, create_trainer
from trm_jax.training.metrics import TRMTrainingLogger, read_metrics, summarize
from trm_jax.training.monitor import ResourceMonitor
from trm_jax.training.state import LRSchedule, TrainState, create_train_state, ema_update, make_optimizer, \
    scale_by_adam_atan2
from trm_jax.training.step import TrainCarry, make_eval_step, make_train_step
from trm_jax.training.trainer import Trainer, TrainResult

__all__ = [
    "Checkpointer", "CurriculumScheduler", "CurriculumStage", "LRSchedule", "ResolvedStage", "ResourceMonitor",
    "TRMTrainingLogger", "TrainCarry", "TrainResult", "TrainState", "Trainer", "as_config", "create_model",
    "create_tokenizer", "create_train_state", "create_trainer", "ema_update", "embed_params", "make_eval_step",
    "make_optimizer", "make_train_step", "read_metrics", "scale_by_adam_atan2", "summarize",
]
