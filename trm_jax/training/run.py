"""A training run: its parts, and where it stands (stage, train state, carry, data position, step), started,
resumed, moved between stages and saved.

The parts: run directory, task, tokenizer and RAG store, stages (data, models, compiled steps),
checkpoints, metrics log, resource monitor and callbacks. The `Trainer` (trainer.py) holds one and runs
the loop that advances it.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import jax
import numpy as np

from trm_jax.config import TRMConfig
from trm_jax.errors import ConfigError
from trm_jax.models import TinyRecursiveModel
from trm_jax.tasks import get_task
from trm_jax.training import distributed as dist
from trm_jax.training.callbacks import CallbackList, config_callbacks
from trm_jax.training.checkpoints import Checkpointer, restore_run_state, save_run_state, should_restore
from trm_jax.training.monitor import ResourceMonitor
from trm_jax.training.run_dir import CHECKPOINT_DIR, METRICS_FILE, TOKENIZER_DIR, RunDirectory, TRMTrainingLogger
from trm_jax.training.stages import Stage, StageBuilder, num_samples, resolve_vocabulary
from trm_jax.training.step import TrainCarry
from trm_jax.training.state import TrainState

log = logging.getLogger(__name__)


class TrainingRun:
    """`run_path=None`: a temporary run directory; the data is `datasets=(train, eval)`, else
    `datasets_fn(seq_len, difficulty)`, else the task's; a given `fixed_model` is trained as it is (no
    curriculum shape changes). `callbacks` run after the ones the config turns on. Nothing is on device
    until `start()`."""

    def __init__(self, config: TRMConfig, *, run_path: Optional[str], fixed_model: Optional[TinyRecursiveModel] = None,
                 tokenizer=None, datasets=(None, None), datasets_fn=None, async_checkpoints: bool = True,
                 callbacks: Iterable = (), resume: bool = False, overwrite: bool = False):
        self.pindex, self.pcount, self.n_local, self.n_global = dist.topology()
        if config.training.halted_samples == "drop" and self.pcount > 1:
            raise ConfigError(f"training.halted_samples=drop runs in one process ({self.pcount} here): every process "
                              "would have to agree on when a new batch starts; use refill (the default) for "
                              "multi-process training")
        self.is_main = self.pindex == 0
        self.resume, self.overwrite = resume, overwrite  # overwrite: a fresh run may replace old checkpoints
        self.run_directory = RunDirectory(run_path, process_index=self.pindex,
                                          progress_bar=config.training.progress_bar)
        self.run_dir = self.run_directory.path
        # where the run stands, set by start()
        self.stage: Optional[Stage] = None
        self.state: Optional[TrainState] = None  # replicated (pmapped)
        self.carry: Optional[TrainCarry] = None  # sharded
        self.iterator_state: Optional[dict] = None  # the data position after the last batch a step consumed
        self.step = 0  # steps done, on the host (the state's step lives on device)
        try:
            self._setup(config, fixed_model, tokenizer, tuple(datasets), datasets_fn, async_checkpoints, callbacks)
        except BaseException:
            self.run_directory.close()
            raise

    def _setup(self, config, fixed_model, tokenizer, datasets, datasets_fn, async_checkpoints, callbacks) -> None:
        self.callbacks = CallbackList([*config_callbacks(config), *callbacks])
        self.task = get_task(config)
        self.tokenizer, self.config = resolve_vocabulary(
            self.task.config, self.task, tokenizer, fixed_model=fixed_model,
            save_dir=self.run_directory.join(TOKENIZER_DIR) if self.is_main else None)
        self.num_tokens = self.config.model.num_tokens
        self.retriever = self.task.retriever()  # None unless rag.enabled: context added before tokenization
        self.base_key = np.asarray(jax.random.key_data(jax.random.PRNGKey(config.seed)))
        self.stages = StageBuilder(
            self.config, self.task, self.tokenizer, samples_transform=self.task.retrieval_transform(self.retriever),
            fixed_model=fixed_model, fixed_datasets=datasets if datasets[0] is not None else None,
            datasets_fn=datasets_fn, base_key=self.base_key, process_index=self.pindex, process_count=self.pcount)
        self.scheduler, self.epoch_size = self.stages.scheduler, self.stages.epoch_size
        self.checkpointer = Checkpointer(self.run_directory.join(CHECKPOINT_DIR),
                                         keep=config.training.keep_checkpoints, async_save=async_checkpoints)
        self.logger = TRMTrainingLogger(self.run_directory.join(METRICS_FILE), enabled=self.is_main)
        self.monitor = ResourceMonitor(config.monitoring)
        self.run_directory.write_run_files(self.config, self.tokenizer, self.retriever, resume=self.resume)
        self.logger.start_trackers(self.config, self.run_dir)  # after the checks a run can fail: no stray W&B run
        log.info("run dir %s | %d host(s) x %d device(s) (%s) | %d stage(s), %d steps total",
                 self.run_dir, self.pcount, self.n_local, jax.local_devices()[0].platform, len(self.scheduler),
                 self.scheduler.total_steps)
        for spec in self.scheduler.stages:
            log.info("curriculum %s", spec.describe())

    def close(self) -> None:
        """Wait for pending checkpoint writes, close metrics.jsonl and detach the log file (idempotent)."""
        self.checkpointer.wait()
        self.logger.close()
        self.run_directory.close()

    def start(self) -> int:
        """Restore the run (resume) or begin it at step 0 in its first stage; returns the step."""
        if not should_restore(self.checkpointer, resume=self.resume, overwrite=self.overwrite, run_dir=self.run_dir):
            self.logger.truncate_after(-1)
            self.enter_first_stage()
            return 0
        run = restore_run_state(self.checkpointer, self.scheduler, self.stages.build, self.stages.state_shapes,
                                self.base_key)
        self.stage, self.state, self.carry = run.stage, run.state, run.carry
        self.base_key = self.stages.base_key = run.base_key
        self.iterator_state, self.step = run.meta["iterator"], run.step
        self.callbacks.load_state_dict(run.meta.get("callbacks", {}))
        self.logger.truncate_after(run.step)
        log.info("resumed from checkpoint step %d (stage %d, epoch %.2f)", run.step, run.stage.spec.index,
                 run.meta.get("epoch", 0))
        self._log_params()
        return run.step

    def enter_first_stage(self) -> None:
        """Step 0 of the first stage: fresh parameters, every slot empty."""
        self.stage = self.stages.build(self.scheduler.stages[0])
        self.state = self.stages.first_state(self.stage)
        self.carry = self.stages.empty_carry(self.stage)
        self.iterator_state, self.step = self.stage.iterator.state_dict(), 0
        self._log_params()

    def transition(self, spec) -> None:
        """Move to the curriculum stage `spec`: new shapes, new compiled step; params carry over."""
        prev, self.stage = self.stage, self.stages.build(spec)
        self.state, note = self.stages.carry_over(self.state, prev, self.stage)
        self.carry = self.stages.empty_carry(self.stage)
        self.iterator_state = self.stage.iterator.state_dict()
        log.info("curriculum: step %d, stage %d -> %d: %s; %s", spec.start, prev.spec.index, spec.index,
                 spec.describe(), note)
        self.logger.log_curriculum(spec, note)
        self._log_params()

    def _log_params(self) -> None:
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params)) // self.n_local
        log.info("model: %s network, dim %d, %d parameters, seq_len %d, %d tokens", self.config.model.network,
                 self.stage.spec.dim, n, self.stage.spec.seq_len, self.num_tokens)

    def epoch(self, step: int) -> float:
        """Epochs of the current stage's training set done at global step `step`."""
        spec = self.stage.spec
        return (step - spec.start) * spec.batch_size / max(num_samples(self.stage.train_set), 1)

    def save_checkpoint(self, checkpointer: Optional[Checkpointer] = None, **meta) -> bool:
        """Save the whole run state at the current step to the run's checkpoints (or `checkpointer`);
        `meta` is stored with it. False when that step is saved already."""
        meta = dict(meta, epoch=self.epoch(self.step), global_devices=self.n_global, processes=self.pcount,
                    seed=self.config.seed, callbacks=self.callbacks.state_dict())
        return save_run_state(checkpointer or self.checkpointer, state=self.state, carry=self.carry,
                              base_key=self.base_key, stage=self.stage, scheduler=self.scheduler,
                              iterator_state=self.iterator_state, meta=meta)
