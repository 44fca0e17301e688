"""Trainer: the deep-supervision training loop over curriculum stages.

One loop iteration = one pmapped train step (one supervision step for every batch slot). The host
only feeds batches: metrics are read back one step behind (which also bounds the dispatch queue and
times steps for the monitor) and summarised every `training.log_every` steps. Stage changes rebuild
the model, data and compiled step; checkpoints make `resume=True` continue the exact trajectory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

from trm_jax.config import (CurriculumConfig, CurriculumStage, DataConfig, ModelConfig, MonitoringConfig, TRMConfig,
                            TrainingConfig)
from trm_jax.errors import ConfigError, TRMError
from trm_jax.data.tokenizers import is_saved_tokenizer, save_tokenizer
from trm_jax.models import TinyRecursiveModel, init_params, make_model, model_config
from trm_jax.rag import build_rag
from trm_jax.tasks import get_task
from trm_jax.training import distributed as dist
from trm_jax.training.checkpoint import Checkpointer
from trm_jax.training.curriculum import CurriculumScheduler, ResolvedStage, embed_params, shapes_equal
from trm_jax.training.metrics import TRMTrainingLogger, summarize, to_jsonable
from trm_jax.training.monitor import ResourceMonitor
from trm_jax.training.run_logging import STEPS_LOGGER, RunLog
from trm_jax.training.state import TrainState, create_train_state, inference_params, make_optimizer, split_table
from trm_jax.training.step import StepSpec, TrainCarry, compiled_train_step, empty_train_carry, evaluate_samples

log = logging.getLogger(__name__)
steps_log = logging.getLogger(STEPS_LOGGER)

CHECKPOINT_FORMAT = 1
# config sections/keys that shape the trajectory: a resumed run must not change them
_RESUME_FIXED = ("seed", "model", "data", "curriculum", "training.batch_size", "training.optimizer",
                 "training.halt_exploration_prob", "training.ema_decay")


@dataclasses.dataclass
class TrainResult:
    """What `Trainer.train()` returns. `params` (the EMA weights) is what to use for inference:
    `trm_jax.models.predict(result.model, result.params, tokens)`."""

    params: Any
    raw_params: Any
    model: TinyRecursiveModel
    config: TRMConfig
    tokenizer: Any
    step: int
    eval: dict
    metrics: dict  # summary of the last logged training window
    history: list  # every training record logged (as written to metrics.jsonl)
    eval_history: list
    run_dir: str
    interrupted: bool = False
    wall_time_s: float = 0.0


@dataclasses.dataclass
class _Stage:
    """Runtime objects of the current curriculum stage."""

    spec: ResolvedStage
    model: TinyRecursiveModel
    train_set: Any
    eval_set: Any
    iterator: Any
    p_step: Callable


def _num_samples(dataset) -> int:
    try:
        return len(dataset)
    except TypeError:
        return len(dataset.inputs)


class Trainer:
    """Trains a TinyRecursiveModel with pmapped deep supervision, EMA and Orbax checkpoints.

    Two ways in, one loop:

    - the PyPI package's way: `Trainer(model, dataset, epochs=2, batch_size=16, ...)()` where
      `dataset` is `(inputs, labels)` arrays, a dict with those keys (and optionally `puzzle_ids`,
      `difficulty`), or an ArrayDataset; `eval_dataset` likewise. Keyword arguments are
      `training` config keys (learning_rate, weight_decay, warmup_steps, ema_decay, ...); the seed's
      names `halt_prob_thres`, `max_recurrent_steps` and `ema_decay_rate` are accepted. With
      `run_dir=None` the checkpoints go to a temporary directory that `close()` (the end of `train()`)
      deletes: pass `run_dir` to keep a run that `trm_jax.load` can read.
    - from a config: `Trainer(config=TRMConfig)` (what `create_trainer` does), which builds model and
      data per curriculum stage. Optional: `tokenizer`, `datasets_fn(seq_len, difficulty) -> (train,
      eval)` or fixed `train_dataset`/`eval_dataset`.

    `resume=True` continues the run in run_dir; `overwrite=True` lets a new run replace its checkpoints
    (otherwise a run_dir with checkpoints is an error). `train()` (or calling the trainer) runs once
    and returns a TrainResult.
    """

    def __init__(self, model: Optional[TinyRecursiveModel] = None, dataset=None, *,
                 config: Optional[TRMConfig] = None, epochs: Optional[float] = None, steps: Optional[int] = None,
                 batch_size: Optional[int] = None, halt_threshold: Optional[float] = None,
                 max_recursion_depth: Optional[int] = None, eval_dataset=None, run_dir: Optional[str] = None,
                 resume: bool = False, tokenizer=None, datasets_fn: Optional[Callable] = None, train_dataset=None,
                 async_checkpoints: bool = True, overwrite: bool = False, seed: int = 0, **training):
        if isinstance(model, TRMConfig):  # Trainer(config, ...)
            model, config = None, model
        self._temp_dir = None
        self._fixed_model = None
        self._user_model = model  # the object the user passed: model.predict(tokens) uses its trained params
        if model is not None:
            if config is not None:
                raise ConfigError("Trainer: pass either a model (with a dataset) or config=, not both")
            model, config, train_dataset, eval_dataset = self._config_for_model(
                model, train_dataset if dataset is None else dataset, eval_dataset, epochs=epochs, steps=steps,
                batch_size=batch_size, halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth,
                run_dir=run_dir, seed=seed, training=training)
            self._fixed_model = model
            if run_dir is None:
                self._temp_dir = tempfile.TemporaryDirectory(prefix="trm_jax_run_")
                run_dir = self._temp_dir.name
        elif config is None:
            raise ConfigError("Trainer needs a model and a dataset (Trainer(model, (inputs, labels))) or a config "
                              "(Trainer(config=trm_jax.load_config('config.yaml')))")
        elif dataset is not None or training or any(v is not None for v in (epochs, steps, batch_size)):
            raise ConfigError("Trainer(config=...): set training options in the config (or --set), not as "
                              "keyword arguments; datasets go in train_dataset/eval_dataset")
        self.pindex, self.pcount, self.n_local, self.n_global = dist.topology()
        self.is_main = self.pindex == 0
        self.run_dir = os.path.abspath(run_dir or config.run_dir)
        self.resume = resume
        self.overwrite = overwrite  # a fresh run may replace a previous run's checkpoints in run_dir
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            self._run_log = RunLog(self.run_dir, self.pindex, config.training.progress_bar)
        except OSError as e:
            raise TRMError(_unwritable(self.run_dir, e)) from None
        try:
            self._setup(config, tokenizer, datasets_fn, train_dataset, eval_dataset, async_checkpoints)
        except BaseException:
            self._run_log.close()
            raise

    def __call__(self) -> "TrainResult":
        return self.train()

    @staticmethod
    def _config_for_model(model, dataset, eval_dataset, *, epochs, steps, batch_size, halt_threshold,
                          max_recursion_depth, run_dir, seed, training):
        """The config tree describing a run of a given model on given arrays."""
        from trm_jax.data import as_array_dataset

        aliases = dict(halt_prob_thres="halt_threshold", max_recurrent_steps="max_recursion_depth",
                       ema_decay_rate="ema_decay")
        for old, new in aliases.items():
            if old in training:
                value = training.pop(old)
                if new == "halt_threshold":
                    halt_threshold = value if halt_threshold is None else halt_threshold
                elif new == "max_recursion_depth":
                    max_recursion_depth = value if max_recursion_depth is None else max_recursion_depth
                else:
                    training.setdefault(new, value)
        if dataset is None:
            raise ConfigError("Trainer(model, dataset): dataset is missing; pass (inputs, labels) arrays, a dict "
                              "with 'inputs' and 'labels', or an ArrayDataset")
        train = as_array_dataset(dataset, "dataset")
        evl = None if eval_dataset is None else as_array_dataset(eval_dataset, "eval_dataset")
        updates = {}
        if halt_threshold is not None:
            updates["halt_threshold"] = float(halt_threshold)
        if max_recursion_depth is not None:
            updates["max_recursion_depth"] = int(max_recursion_depth)
        if model.seq_len is None and getattr(model.network, "seq_len", None) is None:
            updates["seq_len"] = train.seq_len
        model = model.clone(**updates) if updates else model
        if train.seq_len != model.token_len:
            raise ConfigError(f"Trainer: the dataset's rows have {train.seq_len} tokens but the model takes "
                              f"{model.token_len} (network seq_len minus {model.prefix_len} prefix positions)")
        if evl is not None and evl.seq_len != train.seq_len:
            raise ConfigError(f"Trainer: eval_dataset rows have {evl.seq_len} tokens, the dataset's {train.seq_len}")
        unknown = set(training) - {f.name for f in dataclasses.fields(TrainingConfig)}
        if unknown:
            raise ConfigError(f"Trainer: unknown training option(s) {sorted(unknown)}; valid ones are the "
                              "'training' config keys (README, Config reference)")
        mcfg = model_config(model)
        if mcfg is None:
            log.info("Trainer: %s is not described by a ModelConfig; the run directory stores its weights, "
                     "rebuild the model in code to use them", type(model.network).__name__)
            mcfg = ModelConfig(dim=model.dim, num_tokens=model.num_tokens, variant=model.variant,
                               **{k: getattr(model, k) for k in ("num_refinement_blocks", "num_latent_refinements",
                                                                  "halt_loss_weight", "max_recursion_depth",
                                                                  "halt_threshold", "loss")})
        tr = dict(training)
        if batch_size is not None:
            tr["batch_size"] = int(batch_size)
        curriculum = CurriculumConfig()
        if steps is not None:
            tr["steps"] = int(steps)
        else:
            curriculum = CurriculumConfig((CurriculumStage(epochs=float(2 if epochs is None else epochs)),))
        tr.setdefault("batch_size", 16)  # the PyPI package's defaults
        tr.setdefault("eval_batch_size", max(1, min(256, len(evl) if evl is not None else 1)))
        config = TRMConfig(seed=int(seed), run_dir=run_dir or "runs/trainer",
                           model=dataclasses.replace(mcfg, num_tokens=model.num_tokens),
                           data=DataConfig(seq_len=train.seq_len, num_eval=0 if evl is None else len(evl)),
                           training=TrainingConfig(**tr), curriculum=curriculum,
                           monitoring=MonitoringConfig(enabled=False))
        return model, config, train, evl

    def _setup(self, config, tokenizer, datasets_fn, train_dataset, eval_dataset, async_checkpoints) -> None:
        tok_dir = os.path.join(self.run_dir, "tokenizer")

        # tokenizer -> vocabulary size -> resolved config (num_tokens filled in)
        self.task = get_task(config)
        if tokenizer is None and self._fixed_model is not None:
            vocab = self._fixed_model.num_tokens
        elif tokenizer is None:
            tokenizer, vocab, _ = self.task.tokenizer(save_dir=tok_dir if self.is_main else None)
        else:
            vocab = getattr(tokenizer, "vocab_size", None)
        self.tokenizer = tokenizer
        num_tokens = config.model.num_tokens or vocab
        if not num_tokens:
            raise ConfigError("config key 'model.num_tokens': unknown vocabulary size; set it or pass a tokenizer")
        if config.model.num_tokens and vocab and config.model.num_tokens < vocab:
            raise ConfigError(f"config key 'model.num_tokens': {config.model.num_tokens} is smaller than the "
                              f"tokenizer's vocabulary ({vocab}); set it to null to use the tokenizer's size")
        self.config = config.replace(model=dataclasses.replace(config.model, num_tokens=int(num_tokens)))
        self.num_tokens = int(num_tokens)

        # RAG (None unless rag.enabled): retrieved context is added to each sample before tokenization
        self.retriever = build_rag(self.config)
        self._transform = self.task.retrieval_transform(self.retriever)

        # datasets: cached per (seq_len, difficulty); the first stage's training set defines an epoch
        self._fixed = (train_dataset, eval_dataset) if train_dataset is not None else None
        self._datasets_fn = datasets_fn
        self._data_cache: dict = {}
        first = config.curriculum.stages[0] if config.curriculum.stages else None
        seq0 = (first.seq_len if first and first.seq_len else None) or config.data.seq_len
        diff0 = first.difficulty if first and first.difficulty is not None else config.data.difficulty
        self.epoch_size = _num_samples(self._datasets(seq0, diff0)[0])
        self.scheduler = CurriculumScheduler(self.config, self.epoch_size)
        for spec, key in zip(self.scheduler.stages, self.scheduler.batch_keys):
            dist.check_batch(spec.batch_size, key)

        self.tx = make_optimizer(config.training)
        self.checkpointer = Checkpointer(os.path.join(self.run_dir, "checkpoints"),
                                         keep=config.training.keep_checkpoints, async_save=async_checkpoints)
        self.logger = TRMTrainingLogger(os.path.join(self.run_dir, "metrics.jsonl"), enabled=self.is_main)
        self.monitor = ResourceMonitor(config.monitoring)
        self.base_key = np.asarray(jax.random.key_data(jax.random.PRNGKey(config.seed)))
        self._write_run_files(tok_dir)
        self.logger.start_trackers(self.config, self.run_dir)  # after the checks a run can fail: no stray W&B run

        self.stage: Optional[_Stage] = None
        self._state = None  # replicated TrainState (pmapped)
        self._carry = None  # sharded TrainCarry
        self._stop = threading.Event()
        self.history: list = []
        self.eval_history: list = []
        log.info("run dir %s | %d host(s) x %d device(s) (%s) | %d stage(s), %d steps total",
                 self.run_dir, self.pcount, self.n_local, jax.local_devices()[0].platform, len(self.scheduler),
                 self.scheduler.total_steps)
        for spec in self.scheduler.stages:
            log.info("curriculum %s", spec.describe())

    # ------------------------------------------------------------------------------------- run files

    def close(self) -> None:
        """Wait for pending checkpoint writes, close metrics.jsonl and detach the log file (idempotent;
        `train()` ends with it)."""
        self.checkpointer.wait()
        self.logger.close()
        self._run_log.close()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()

    def _write_run_files(self, tok_dir: str) -> None:
        if not self.is_main:
            return
        path = os.path.join(self.run_dir, "config.yaml")
        if self.resume and os.path.exists(path):
            self._check_resume_config(path)
        try:
            self._save_run_files(path, tok_dir)
        except OSError as e:
            raise TRMError(_unwritable(self.run_dir, e)) from None

    def _save_run_files(self, path: str, tok_dir: str) -> None:
        self.config.save(path)
        if hasattr(self.tokenizer, "save") and not is_saved_tokenizer(tok_dir):
            save_tokenizer(self.tokenizer, tok_dir)
        if self.retriever is not None:
            self.retriever.save(os.path.join(self.run_dir, "rag"))

    def _check_resume_config(self, path: str) -> None:
        from trm_jax.config import load_config
        old, new = load_config(path).to_dict(), self.config.to_dict()

        def get(d, key):
            for part in key.split("."):
                d = d[part]
            return d

        for key in _RESUME_FIXED:
            if get(old, key) != get(new, key):
                raise TRMError(f"--resume: config key '{key}' differs from the run's saved config "
                               f"({os.path.join(self.run_dir, 'config.yaml')}); resume with the saved config "
                               "(--config <run_dir>/config.yaml) or start a new run_dir")
        changed = [f"{s}.{k}" for s in ("training", "monitoring") for k in old[s] if old[s][k] != new[s][k]]
        if changed:
            log.warning("--resume with changed settings: %s", ", ".join(changed))

    # ---------------------------------------------------------------------------------------- stages

    def _datasets(self, seq_len: int, difficulty: float):
        if self._fixed is not None:
            train, evl = self._fixed
            if train.inputs.shape[1] != seq_len:
                raise ConfigError(f"the given train_dataset has seq_len {train.inputs.shape[1]} but the run needs "
                                  f"{seq_len} (data.seq_len / curriculum); pass datasets_fn to build per stage")
            return train, evl
        key = (int(seq_len), round(float(difficulty), 6))
        if key not in self._data_cache:
            if self._datasets_fn is not None:
                out = self._datasets_fn(seq_len, difficulty)
            else:
                out = self.task.datasets(self.tokenizer, seq_len=seq_len, difficulty=difficulty,
                                         samples_transform=self._transform)
            self._data_cache = {key: out}  # one stage's data at a time keeps memory flat
        return self._data_cache[key]

    def _stage_model(self, spec: ResolvedStage) -> TinyRecursiveModel:
        if self._fixed_model is not None:
            model = self._fixed_model
            if (spec.seq_len, spec.dim) != (model.token_len, model.dim):
                raise ConfigError(f"curriculum stage {spec.index} asks for seq_len {spec.seq_len}, dim {spec.dim}, "
                                  f"but the given model has {model.token_len}, {model.dim}")
            return model
        mcfg = self.config.model
        if spec.dim != mcfg.dim:
            mcfg = dataclasses.replace(mcfg, dim=int(spec.dim))
            mcfg.validate("model")
        return make_model(mcfg, self.num_tokens, spec.seq_len)

    def _build_stage(self, spec: ResolvedStage) -> _Stage:
        from trm_jax.data import BatchIterator

        model = self._stage_model(spec)
        train, evl = self._datasets(spec.seq_len, spec.difficulty)
        _check_puzzle_ids(model, train, evl)
        iterator = BatchIterator(train, spec.batch_size, seed=self.config.seed + 1000003 * spec.index,
                                 shard_index=self.pindex, num_shards=self.pcount)
        p_step = compiled_train_step(model, StepSpec.create(self.config.training, total_steps=self.scheduler.total_steps,
                                                            global_batch=spec.batch_size, peak_lr=spec.learning_rate))
        return _Stage(spec, model, train, evl, iterator, p_step)

    def _init_params(self, model: TinyRecursiveModel, spec: ResolvedStage):
        key = jax.random.fold_in(jax.random.wrap_key_data(self.base_key), spec.index)
        return jax.device_get(init_params(model, key))

    def _empty_carry(self, stage: _Stage):
        spec, model = stage.spec, stage.model
        rows = spec.batch_size // self.pcount
        carry = empty_train_carry(rows, model)
        return dist.put_sharded(dist.shard(carry))

    def _enter_first_stage(self) -> None:
        spec = self.scheduler.stages[0]
        self.stage = self._build_stage(spec)
        params = self._init_params(self.stage.model, spec)
        self._state = dist.replicate(jax.device_get(create_train_state(params, self.tx)))
        self._carry = self._empty_carry(self.stage)
        self._log_params()

    def _transition(self, spec: ResolvedStage) -> None:
        """Move to the next curriculum stage: new shapes, new compiled step; params carry over."""
        prev = self.stage
        host = dist.unreplicate(self._state)
        self.stage = self._build_stage(spec)
        note = "params carried over"
        target = jax.eval_shape(lambda: init_params(self.stage.model, jax.random.PRNGKey(0)))
        if not shapes_equal(host.params, target):
            fresh = self._init_params(self.stage.model, spec)
            params = embed_params(host.params, fresh)
            ema = embed_params(host.ema_params, split_table(fresh)[0])
            host = create_train_state(params, self.tx, step=int(host.step), ema_params=ema)
            host = jax.device_get(host)
            note = (f"trained weights embedded into a freshly initialised model (dim {prev.spec.dim}->{spec.dim}, "
                    f"seq_len {prev.spec.seq_len}->{spec.seq_len}); optimizer state rebuilt")
        self._state = dist.replicate(host)
        self._carry = self._empty_carry(self.stage)
        log.info("curriculum: step %d, stage %d -> %d: %s; %s", spec.start, prev.spec.index, spec.index,
                 spec.describe(), note)
        self.logger.log(dict(step=spec.start, stage=spec.index, seq_len=spec.seq_len, batch_size=spec.batch_size,
                             dim=spec.dim, difficulty=spec.difficulty, learning_rate=spec.learning_rate,
                             note=note), split="curriculum")
        self._log_params()

    def _log_params(self) -> None:
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self._state.params)) // self.n_local
        log.info("model: %s network, dim %d, %d parameters, seq_len %d, %d tokens", self.config.model.network,
                 self.stage.spec.dim, n, self.stage.spec.seq_len, self.num_tokens)

    # ---------------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> bool:
        host = dist.unreplicate(self._state)
        step = int(host.step)
        carry = dist.to_global(dist.unshard(self._carry)._asdict())
        tree = dict(state=dataclasses.asdict(host), carry=carry, key=self.base_key)
        meta = dict(format=CHECKPOINT_FORMAT, step=step, stage=self.stage.spec.index,
                    stage_start=self.stage.spec.start, total_steps=self.scheduler.total_steps,
                    iterator=to_jsonable(self.stage.iterator.state_dict()), epoch=self._epoch(step),
                    global_devices=self.n_global, processes=self.pcount, seed=self.config.seed)
        return self.checkpointer.save(step, tree, meta)

    def _restore(self) -> int:
        def target(step: int, meta: dict):
            stage = meta.get("stage", -1)
            if (meta.get("format") != CHECKPOINT_FORMAT or not 0 <= stage < len(self.scheduler)
                    or self.scheduler.stages[stage].start != meta.get("stage_start")):
                raise TRMError(f"checkpoint {self.checkpointer.directory}/{step} was written by a run with a "
                               "different curriculum; resume with the run's config.yaml or start a new run_dir")
            spec = self.scheduler.stages[stage]
            self.stage = self._build_stage(spec)
            shapes = jax.eval_shape(lambda: create_train_state(init_params(self.stage.model, jax.random.PRNGKey(0)),
                                                               self.tx))
            state_t = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dataclasses.asdict(shapes))
            sharding = dist.global_batch_sharding()
            carry_t = jax.tree.map(lambda x: jax.ShapeDtypeStruct((spec.batch_size,) + x.shape[1:], x.dtype,
                                                                  sharding=sharding),
                                   empty_train_carry(1, self.stage.model)._asdict())
            return dict(state=state_t, carry=carry_t, key=self.base_key)

        # the newest checkpoint that reads back intact (a damaged one is reported and set aside)
        step, meta, out = self.checkpointer.restore_latest(target)
        spec = self.stage.spec
        if meta.get("total_steps") != self.scheduler.total_steps:
            log.warning("resuming a run of %s steps as a run of %d steps: the learning-rate schedule is stretched "
                        "accordingly", meta.get("total_steps"), self.scheduler.total_steps)
        if step >= self.scheduler.total_steps:
            log.warning("the checkpoint is at step %d, the end of this run (%d steps); raise training.steps to "
                        "train further", step, self.scheduler.total_steps)
        self.base_key = np.asarray(out["key"])
        self._state = dist.replicate(TrainState(**out["state"]))
        self._carry = dist.put_sharded(dist.shard(TrainCarry(**dist.from_global(out["carry"]))))
        self.stage.iterator.load_state_dict(meta["iterator"])
        self.logger.truncate_after(step)
        log.info("resumed from checkpoint step %d (stage %d, epoch %.2f)", step, spec.index, meta.get("epoch", 0))
        self._log_params()
        return step

    # ------------------------------------------------------------------------------------- evaluate

    def evaluate(self, params=None, *, stage: Optional[_Stage] = None) -> dict:
        """Held-out metrics with `params` (default: the current EMA params) via the model's predict.

        Returns exact_accuracy, token_accuracy, recursion_depth (mean supervision steps) and num_samples.
        Every host evaluates the whole eval set on its local devices.
        """
        stage = stage or self.stage
        if stage is None:
            raise TRMError("evaluate() needs a trained or restored model: call train() first")
        if stage.eval_set is None or _num_samples(stage.eval_set) == 0:
            return {}
        rep = inference_params(self._state) if params is None else dist.replicate(jax.device_get(params))
        res = evaluate_samples(stage.model, rep, stage.eval_set, self.config.training.eval_batch_size, replicated=True)
        return dict(exact_accuracy=float(res["exact"].mean()),
                    token_accuracy=float(res["token_correct"].sum() / max(res["token_count"].sum(), 1)),
                    recursion_depth=float(res["recursion_depth"].mean()), num_samples=len(res["exact"]))

    def _run_eval(self, step: int) -> dict:
        t = time.time()
        res = self.evaluate()
        if res:
            res["eval_time_s"] = time.time() - t
            self.eval_history.append(dict(step=step, stage=self.stage.spec.index, **res))
            self.logger.log_eval(step, self.stage.spec.index, res)
            log.info("eval @ step %d: exact %.4f, token %.4f, recursion depth %.2f (%d samples, %.1fs)", step,
                     res["exact_accuracy"], res["token_accuracy"], res["recursion_depth"], res["num_samples"],
                     res["eval_time_s"])
        return res

    # ------------------------------------------------------------------------------------------ train

    def _epoch(self, step: int) -> float:
        spec = self.stage.spec
        return (step - spec.start) * spec.batch_size / max(_num_samples(self.stage.train_set), 1)

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, frame):
            log.warning("received %s: saving a checkpoint and stopping after this step",
                        signal.Signals(signum).name)
            self._stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, handler)
        return old

    def request_stop(self) -> None:
        """Stop after the current step with a checkpoint (what SIGTERM/SIGINT do)."""
        self._stop.set()

    def train(self) -> TrainResult:
        cfg = self.config.training
        t_start = time.time()
        old_signals = self._install_signals()
        bar = None
        try:
            if self.resume and self.checkpointer.latest_step() is not None:
                step = self._restore()
            else:
                if self.resume:
                    log.warning("--resume: no checkpoint in %s; starting a new run", self.checkpointer.directory)
                elif self.checkpointer.latest_step() is not None:
                    if not self.overwrite:
                        raise TRMError(f"{self.run_dir} already holds checkpoints of a run; pass --resume "
                                       "(resume=True) to continue it, overwrite=True to start it over, or choose "
                                       "another run_dir")
                    log.warning("overwrite: deleting the checkpoints of the previous run in %s", self.run_dir)
                    self.checkpointer.delete_all()
                self.logger.truncate_after(-1)
                self._enter_first_stage()
                step = 0
            total = self.scheduler.total_steps
            bar = _progress_bar(total, step, cfg.progress_bar and self.is_main)
            try:
                summary, interrupted = self._loop(step, total, bar)
            except OSError as e:  # metrics.jsonl on a full or read-only disk (checkpoint writes: Checkpointer)
                raise TRMError(_unwritable(self.run_dir, e, self.checkpointer.latest_step())) from e
            if not interrupted:
                final_eval = self._run_eval(int(self._host_step()))
            else:
                final_eval = self.eval_history[-1] if self.eval_history else {}
            self.save_checkpoint()
            self.checkpointer.wait()
        finally:
            if bar is not None:
                bar.close()
            for sig, h in old_signals.items():
                signal.signal(sig, h)
            self.close()
        ema = dist.unreplicate(inference_params(self._state))
        self.stage.model.attach_trained_params(ema)  # model.predict(tokens), on the model trained and the user's
        if self._user_model is not None:
            self._user_model.attach_trained_params(ema)
        raw = dist.unreplicate(self._state.params)
        return TrainResult(params=ema, raw_params=raw, model=self.stage.model, config=self.config,
                           tokenizer=self.tokenizer, step=int(self._host_step()), eval=final_eval, metrics=summary,
                           history=self.history, eval_history=self.eval_history, run_dir=self.run_dir,
                           interrupted=interrupted, wall_time_s=time.time() - t_start)

    def _host_step(self) -> int:
        return int(dist.unreplicate(self._state.step))

    def _loop(self, step: int, total: int, bar) -> tuple[dict, bool]:
        cfg = self.config.training
        step_key = jax.random.fold_in(jax.random.wrap_key_data(self.base_key), 1 << 20)
        window, pending, t_prev, warm = [], None, None, 0
        t_flush, step_flush = time.time(), step
        summary, reading = {}, None
        while step < total:
            if step >= self.stage.spec.end:
                self._transition(self.scheduler.stage_at(step))
                pending, t_prev, warm = None, None, 0
                t_flush, step_flush = time.time(), step
            batch = dist.shard(next(self.stage.iterator))
            key = jax.random.key_data(jax.random.fold_in(step_key, step))
            self._state, self._carry, metrics = self.stage.p_step(self._state, self._carry, batch, key)
            step += 1
            if pending is not None:  # previous step finished: bounds the queue and times the step
                jax.block_until_ready(pending["loss"])
                now = time.time()
                if t_prev is not None and warm >= 2:  # skip the compile steps
                    self.monitor.record_step(now - t_prev, step - 1)
                t_prev, warm = now, warm + 1
            pending = metrics
            window.append(metrics)
            if bar is not None:
                bar.update(1)
            if self.monitor.due(step):
                reading = self.monitor.sample()
            if step % cfg.log_every == 0 or step == self.stage.spec.end or step == total:
                summary = self._flush(window, step, t_flush, step_flush, bar, reading)
                window, reading = [], None
                t_flush, step_flush = time.time(), step
            t_side = time.time()
            if step % cfg.eval_every == 0 and step < total:
                self._run_eval(step)
            if step % cfg.checkpoint_every == 0 and step < total:
                self.save_checkpoint()
            if time.time() - t_side > 1e-3:  # eval/checkpoint time counts neither as a slow batch nor in tokens/s
                pending, t_prev = None, None
                t_flush += time.time() - t_side
            if self._stop.is_set():
                if window:
                    summary = self._flush(window, step, t_flush, step_flush, bar, reading)
                log.warning("stopping at step %d on request; resume with --resume", step)
                return summary, True
        return summary, False

    def _flush(self, window, step, t_flush, step_flush, bar, reading) -> dict:
        spec = self.stage.spec
        host = [dist.unreplicate(m) for m in window]  # one device->host sync per window
        summary = summarize(host)
        # every step's counter, not only the window's last: a run of K bad steps followed by a good one
        # inside one window still stops the run
        counts = [int(np.asarray(m["nonfinite"])) for m in host]
        summary["skipped"] = skipped = sum(c > 0 for c in counts)  # updates skipped in this window
        elapsed = max(time.time() - t_flush, 1e-9)
        tps = (step - step_flush) * spec.batch_size * spec.seq_len / elapsed
        rec = self.logger.log_train(step, self._epoch(step), spec.index, summary, tokens_per_sec=tps,
                                    **(reading or {}))
        self.history.append(rec)
        steps_log.info("step %d/%d stage %d | loss %.4f ce %.4f halt %.4f | tok acc %.4f exact %.4f | depth %.2f | "
                       "lr %.2e | %.0f tok/s", step, self.scheduler.total_steps, spec.index, summary["loss"],
                       summary["ce"], summary["halt_loss"], summary["token_accuracy"], summary["exact_accuracy"],
                       summary["recursion_depth"], summary["lr"], tps)
        if bar is not None:
            bar.set_postfix(loss=f"{summary['loss']:.3f}", acc=f"{summary['token_accuracy']:.3f}",
                            exact=f"{summary['exact_accuracy']:.3f}", refresh=False)
        bad = max(counts)
        if skipped:
            log.warning("steps %d-%d: %d update(s) skipped for a non-finite loss or gradient (longest run: %d "
                        "consecutive)", step - len(host) + 1, step, skipped, bad)
            if bad >= self.config.training.max_consecutive_nonfinite:
                last = self.checkpointer.latest_step()
                raise TRMError(f"training diverged at step {step}: {bad} consecutive steps with a non-finite loss "
                               "or gradient were skipped (training.max_consecutive_nonfinite="
                               f"{self.config.training.max_consecutive_nonfinite}). Lower training.learning_rate, "
                               "keep training.grad_clip_norm > 0, check the data for bad samples (token ids outside "
                               "the vocabulary), then resume with --resume"
                               + (f" (last checkpoint: step {last})" if last is not None else ""))
        return summary


def _check_puzzle_ids(model: TinyRecursiveModel, *datasets) -> None:
    """Every puzzle identifier of the data must have a row in the model's puzzle-embedding table."""
    if not model.has_puzzle_emb:
        return
    for ds in datasets:
        ids = getattr(ds, "puzzle_ids", None)
        if ids is not None and len(ids) and int(np.max(ids)) >= model.num_puzzle_identifiers:
            raise ConfigError(f"config key 'model.num_puzzle_identifiers': the data has puzzle identifiers up to "
                              f"{int(np.max(ids))} but the table has {model.num_puzzle_identifiers} rows; set it to at "
                              f"least {int(np.max(ids)) + 1}")


def _unwritable(run_dir: str, e: OSError, last_step: Optional[int] = None) -> str:
    where = getattr(e, "filename", None) or run_dir
    tail = f"; then rerun with --resume (last complete checkpoint: step {last_step})" if last_step is not None else ""
    return (f"cannot write to the run directory {run_dir} ({where}: {e.strerror or e}); free disk space or make it "
            f"writable, or set run_dir (--run-dir) to a writable directory{tail}")


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, mininterval=1.0)
