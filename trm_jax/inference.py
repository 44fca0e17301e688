"""`load(run_dir)` and `infer(params, query)`: what a user does after training.

`load` returns `TRMParams`, a pytree whose leaves are the model weights and whose static part
carries the config, tokenizer and RAG retriever, so `jax.tree.map` / `jax.device_put` work on it
and `infer(params, query)` needs nothing else: the run's task encodes the query, the model predicts,
the task decodes the answer (`trm_jax.tasks.base.Task.infer`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.config import TRMConfig, load_config
from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError
from trm_jax.models import init_params, make_model
from trm_jax.models.predict import HALTING, check_halting
from trm_jax.models.trajectories import SELECT_MODES
from trm_jax.pretrained import PRETRAINED_CONFIG_FILE, is_pretrained, read_pretrained, resolve_model
from trm_jax.rag import load_run_retriever
from trm_jax.tasks import get_task
from trm_jax.training.checkpoints import Checkpointer
from trm_jax.training.run_dir import BEST_DIR, CHECKPOINT_DIR, RUN_CONFIG_FILE, TOKENIZER_DIR
from trm_jax.training.stages import stage_config


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(eq=False)
class TRMParams:
    """Model weights plus what inference needs. A pytree: its only leaves are the weights.

    `trm_jax.load` returns one; `jax.tree.map` and `jax.device_put` act on the weights alone, the rest
    is static. `params.model` is the `TinyRecursiveModel` the config describes.

    Attributes:
        params: The model weights (a nested dict of arrays).
        config: The run's `TRMConfig`, at the width, `seq_len`, `T` and `n` the weights have.
        tokenizer: The run's tokenizer; None where the task builds its vocabulary from data.
        retriever: The run's `RAGRetriever`, or None for a model that does not retrieve.
        num_tokens: Vocabulary size.
        seq_len: Tokens per sample.
        step: The training step the weights are from; None when unknown.
        run_dir: The directory they were loaded from; None for weights wrapped in memory.
        adaptation: What test-time adaptation added (the task's object, e.g. ARC's adapted tasks and
            their identifiers; `trm_jax.adapt`); None for a run as trained.
    """

    params: Any
    config: TRMConfig
    tokenizer: Any = None
    retriever: Any = None
    num_tokens: int = 0
    seq_len: int = 0
    step: Optional[int] = None
    run_dir: Optional[str] = None
    adaptation: Any = None

    def tree_flatten(self):
        aux = (self.config, self.tokenizer, self.retriever, self.num_tokens, self.seq_len, self.step, self.run_dir,
               self.adaptation)
        return (self.params,), aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    @property
    def model(self):
        # equal configs give equal (hash-equal) models, so jitted predict reuses its compiled programs
        return make_model(self.config.model, self.num_tokens, self.seq_len)

    def __repr__(self) -> str:
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params))
        return (f"TRMParams({self.config.model.network}, dim={self.config.model.dim}, {n} parameters, "
                f"seq_len={self.seq_len}, step={self.step}, run_dir={self.run_dir!r})")


# ------------------------------------------------------------------------------------------------ load

def load(run_dir: Union[str, os.PathLike], *, step: Optional[int] = None, use_ema: bool = True,
         which: str = "latest") -> TRMParams:
    """Load a trained run: weights (EMA by default), config, tokenizer and RAG store.

    The run directory is only read.

    Args:
        run_dir: A run directory (scripts/train.py's), a pretrained directory (`trm_jax.save_pretrained`),
            `hf://user/repo[@revision]` (resolved through the Hugging Face cache; HF_HUB_OFFLINE=1: the
            cache only), or the name of a model shipped with trm_jax (`trm_jax.pretrained_models()`:
            "sudoku", ...), read from the installed package; an existing path of that name wins. A
            pretrained directory holds one set of weights, loaded as float32.
        step: The checkpoint to load; None = the newest whose weights read back intact (a damaged one is
            reported and the one before it is loaded). For a pretrained directory it must be the step
            it holds.
        use_ema: Load the EMA weights; False = the raw optimizer weights (run directories only).
        which: "latest" (the checkpoints) or "best" (the checkpoint with the best held-out metric, kept
            in run_dir/best by a run with `training.keep_best`; run directories only).

    Returns:
        The `TRMParams` that `infer`, `evaluate` and `trace` take.

    Raises:
        TRMError: An unknown `which`; `run_dir` is not a run or pretrained directory, or has no such
            checkpoint (or no best one); an option does not apply to a pretrained directory; or the
            weights do not fit the saved config.
    """
    run_dir = resolve_model(run_dir)
    if which not in ("latest", "best"):
        raise TRMError(f"load(which={which!r}): use 'latest' (the newest checkpoint) or 'best' (run_dir/best)")
    if is_pretrained(run_dir):
        if which != "latest":
            raise TRMError(f"{run_dir} is a pretrained directory with one set of weights; which='best' is for run "
                           "directories trained with training.keep_best")
        return _load_pretrained(run_dir, step=step, use_ema=use_ema)
    run_dir = os.path.abspath(os.fspath(run_dir))
    cfg_path = os.path.join(run_dir, RUN_CONFIG_FILE)
    ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
    if not os.path.isfile(cfg_path) or not os.path.isdir(ckpt_dir):
        raise TRMError(f"{run_dir} is not a trm_jax run directory (needs {RUN_CONFIG_FILE} and {CHECKPOINT_DIR}/); "
                       "pass the run_dir that scripts/train.py wrote")
    if which == "best":
        ckpt_dir = os.path.join(run_dir, BEST_DIR)
        if not os.path.isdir(ckpt_dir) or not any(d.isdigit() for d in os.listdir(ckpt_dir)):
            raise TRMError(f"{run_dir} has no best checkpoint ({BEST_DIR}/): train with training.keep_best set (e.g. "
                           "--set training.keep_best=exact_accuracy) to keep one, or load the latest checkpoint")
    with Checkpointer(ckpt_dir, read_only=True) as checkpoints:
        # no checkpoint, or no such step: say so before building anything
        newest = checkpoints.candidate_steps(step)[0]
        config = load_config(cfg_path)
        tok_dir = os.path.join(run_dir, TOKENIZER_DIR)
        tokenizer = vocab = None
        if os.path.isdir(tok_dir):
            tokenizer, vocab, _ = load_tokenizer(tok_dir)
        else:
            tokenizer = _task_tokenizer(config)
        num_tokens = config.model.num_tokens or vocab
        if not num_tokens:
            raise TRMError(f"{run_dir}: neither model.num_tokens nor a saved tokenizer gives the vocabulary size")
        config = stage_config(config, _saved_stage(checkpoints, newest))  # its width, seq_len, T and n
        seq_len = config.data.seq_len
        config = config.replace(model=dataclasses.replace(config.model, num_tokens=int(num_tokens)))
        model = make_model(config.model, int(num_tokens), seq_len)
        shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
        # only the weights (not optimizer state or carry), as host NumPy arrays
        step, params = checkpoints.restore_weights(shapes, step=step, which="ema" if use_ema else "params",
                                                   target_desc=f"the model described by {cfg_path}")
    _check_params(params, shapes, f"checkpoint {ckpt_dir}/{step}")

    retriever = load_run_retriever(run_dir, config)
    params = jax.tree.map(jnp.asarray, params)
    return TRMParams(params, config, tokenizer, retriever, int(num_tokens), seq_len, int(step), run_dir,
                     get_task(config).load_adaptation(run_dir))


def _saved_stage(checkpoints: Checkpointer, step: int) -> Optional[int]:
    """The curriculum stage checkpoint `step` was written in (None: unknown, e.g. an unreadable meta)."""
    try:
        return checkpoints.read_meta(step).get("stage")
    except Exception:  # a damaged meta: restore_weights reports it and falls back
        return None


def _task_tokenizer(config: TRMConfig):
    """The task's own tokenizer for a saved model without tokenizer files (an imported checkpoint), or None
    where the task builds its vocabulary from data (infer then says what is missing)."""
    try:
        return get_task(config).tokenizer()[0]
    except (TRMError, OSError, ValueError):
        return None


def _load_pretrained(path, *, step: Optional[int], use_ema: bool) -> TRMParams:
    if not use_ema:
        raise TRMError(f"{path} is a pretrained directory: it holds one set of weights (those save_pretrained was "
                       "given), so use_ema=False does not apply; load the run directory for the raw weights")
    pre = read_pretrained(path)
    if step is not None and step != pre.step:
        raise TRMError(f"{path} is a pretrained directory holding the weights of step {pre.step}, not {step}; "
                       "load the run directory for another step")
    config = pre.config
    num_tokens, seq_len = config.model.num_tokens, config.data.seq_len
    if not num_tokens:
        raise TRMError(f"{pre.directory}/{PRETRAINED_CONFIG_FILE} gives no model.num_tokens; save the model again")
    shapes = jax.eval_shape(lambda: init_params(make_model(config.model, num_tokens, seq_len), jax.random.key(0)))
    _check_params(pre.params, shapes, f"{pre.directory}/model.safetensors")
    tokenizer = pre.tokenizer if pre.tokenizer is not None else _task_tokenizer(config)
    return TRMParams(jax.tree.map(jnp.asarray, pre.params), config, tokenizer, pre.retriever, int(num_tokens),
                     int(seq_len), pre.step, pre.directory, get_task(config).load_adaptation(pre.directory))


def _check_params(params, shapes, what: str) -> None:
    flat_p = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    flat_s = dict(jax.tree_util.tree_flatten_with_path(shapes)[0])
    for path, spec in flat_s.items():
        name = jax.tree_util.keystr(path)
        if path not in flat_p:
            raise TRMError(f"{what}: parameter {name} is missing; it was trained with another config "
                           "(pass the config it was trained with)")
        if tuple(np.shape(flat_p[path])) != tuple(spec.shape):
            raise TRMError(f"{what}: parameter {name} has shape {tuple(np.shape(flat_p[path]))} but the config "
                           f"expects {tuple(spec.shape)}; it was trained with another config "
                           "(pass the config it was trained with)")
    extra = set(flat_p) - set(flat_s)
    if extra:
        raise TRMError(f"{what}: unexpected parameters {sorted(jax.tree_util.keystr(p) for p in extra)[:3]}; "
                       "it was trained with another config")


# ----------------------------------------------------------------------------------------------- infer

def as_trm_params(params, *, config: Optional[TRMConfig] = None, tokenizer=None, retriever=None) -> TRMParams:
    """Wrap a raw Flax params dict (with the config it was trained with) as TRMParams."""
    if isinstance(params, TRMParams):
        if config is None and tokenizer is None and retriever is None:
            return params
        return dataclasses.replace(params, config=config or params.config, tokenizer=tokenizer or params.tokenizer,
                                   retriever=retriever or params.retriever)
    if config is None:
        raise TRMError("infer() got a raw params dict without config=; pass config=<the TRMConfig it was trained "
                       "with>, or use trm_jax.load(run_dir)")
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    if tokenizer is None:
        tokenizer, vocab, _ = get_task(config).tokenizer()
    else:
        vocab = tokenizer.vocab_size
    num_tokens = config.model.num_tokens or vocab
    config = stage_config(config)  # the last curriculum stage's width, seq_len, T and n
    seq_len = config.data.seq_len
    shapes = jax.eval_shape(lambda: init_params(make_model(config.model, num_tokens, seq_len), jax.random.key(0)))
    _check_params(params, shapes, "params")
    if retriever is None and config.rag.enabled:
        raise TRMError("config has rag.enabled but no retriever was given; pass retriever= or use trm_jax.load")
    return TRMParams(params, config, tokenizer, retriever, int(num_tokens), seq_len)


def infer(params, text: Union[str, Sequence[str]], *, config: Optional[TRMConfig] = None, tokenizer=None,
          retriever=None, halt_threshold: Optional[float] = None, max_recursion_depth: Optional[int] = None,
          return_details: bool = False, trajectories: int = 1, noise_std: Optional[float] = None,
          select: str = "halt", seed: int = 0, halting: Optional[str] = None, settle_steps: Optional[int] = None):
    """Answer one query (returns one answer) or a list of queries (returns a list).

    The run's task encodes each query, the model predicts, the task decodes the answer. Sudoku runs
    take an 81-character grid ('.' or '0' for blanks) and return the solved grid as 81 digits; maze runs
    take the question grid (row-major `# SG` characters) and return it with the path marked `o`. ARC runs
    take a task (a dict, its JSON text or a task file; or a list of them) and return two attempts per
    test input, `[{"attempt_1": grid, "attempt_2": grid}, ...]` (voting over the task's trained
    augmentations; by default every supervision step runs, as the official evaluation). Text tasks take
    and return strings. Test-time compute: docs/test-time-compute.md.

    Args:
        params: What `trm_jax.load` returns, or a raw Flax params dict with `config=`.
        text: One query or a list of queries, in the task's format (above).
        config: With raw params: the `TRMConfig` they were trained with.
        tokenizer: With raw params: their tokenizer; None = the task's.
        retriever: With raw params of a model that retrieves (`rag.enabled`): its `RAGRetriever`.
        halt_threshold: With `halting="head"`, a query stops when its halting probability reaches this;
            None = the model's.
        max_recursion_depth: Supervision steps at most; None = the model's. It may exceed the depth the
            run trained with, by thousands, at no memory cost.
        return_details: Return each answer as a dict: answer, recursion_depth, halt_prob, settled (its
            trajectory stopped by the stop rule, settling or the halting head, rather than at the depth
            cap), verified (where the task has a verifier: the answer passes the task's rules,
            `Task.verify`), contexts (retrieved (text, score) pairs when RAG is on).
        trajectories: K, noisy trajectories per query, one of which answers.
        noise_std: Scale of the noise on the recursion's state; None = `trm_jax.models.DEFAULT_NOISE_STD`
            when K > 1.
        select: Which trajectory answers: the one the halting head rates highest ("halt"), the most
            frequent answer ("vote"), the most frequent settled answer ("settled") or one the task's
            verifier accepts ("verify"; Sudoku and maze; the vote among all where none passes).
        seed: Keys the noise: the same seed gives the same answers.
        halting: The stop rule: "head" (the halting head at `halt_threshold`) or "settled" (a query stops
            once its answer has not changed for `settle_steps` consecutive supervision steps); None = the
            run's `model.halting`. Either way a query stops at `max_recursion_depth` at the latest.
        settle_steps: For `halting="settled"`; None = the run's `model.settle_steps`.

    Returns:
        The answer (a list of answers for a list of queries): the task's decoded answer, or a dict with
        `return_details=True`.

    Raises:
        TRMError: A bad query or option, e.g. an unknown `halting`, `settle_steps` < 1, or `select="verify"`
            for a task without a verifier.
    """
    p = as_trm_params(params, config=config, tokenizer=tokenizer, retriever=retriever)
    p = with_halting(p, halting, settle_steps)
    task = get_task(p.config)
    task.select_verifier(p.tokenizer, select)  # one clear error for verify on a task without a verifier
    return task.infer(p, text, halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth,
                      return_details=return_details, trajectories=trajectories, noise_std=noise_std, select=select,
                      seed=seed)


def with_halting(params: TRMParams, halting: Optional[str] = None, settle_steps: Optional[int] = None) -> TRMParams:
    """`params` whose model stops by `halting` / `settle_steps` (None: as its config says, `model.halting`,
    `model.settle_steps`): every task's inference and evaluation then use them, through `params.model`.

    Raises:
        TRMError: An unknown `halting` or a `settle_steps` that is not an int >= 1.
    """
    if halting is None and settle_steps is None:
        return params
    model = params.config.model
    halting, settle_steps = check_halting(model, halting, settle_steps)
    model = dataclasses.replace(model, halting=halting, settle_steps=int(settle_steps))
    return dataclasses.replace(params, config=params.config.replace(model=model))


def add_trajectory_arguments(parser: argparse.ArgumentParser) -> None:
    """The test-time compute flags `infer` and `evaluate` share (scripts/infer.py, scripts/evaluate.py):
    --trajectories, --noise-std, --select, --seed, --halting, --settle-steps; `trajectory_options(args)`
    reads them back."""
    parser.add_argument("--trajectories", type=int, default=1, metavar="K",
                        help="noisy trajectories per sample, one of which answers (docs/test-time-compute.md)")
    parser.add_argument("--noise-std", type=float, default=None, metavar="S",
                        help="scale of the Gaussian noise on the answer state (default with K > 1: "
                        "trm_jax.models.DEFAULT_NOISE_STD)")
    parser.add_argument("--select", choices=SELECT_MODES, default="halt",
                        help="the trajectory the halting head rates highest (halt), the most frequent answer "
                        "(vote), the most frequent settled answer (settled), or one the task's verifier accepts "
                        "(verify: Sudoku, maze)")
    parser.add_argument("--seed", type=int, default=0, help="key of the trajectories' noise")
    parser.add_argument("--halting", choices=HALTING, default=None,
                        help="stop rule: the halting head (head) or an answer unchanged for --settle-steps "
                        "supervision steps (settled); default: the run's model.halting")
    parser.add_argument("--settle-steps", type=int, default=None, metavar="N",
                        help="with --halting settled: unchanged steps before a sample stops (default: the run's "
                        "model.settle_steps)")


def trajectory_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `infer` / `evaluate` from the flags of `add_trajectory_arguments`."""
    return dict(trajectories=args.trajectories, noise_std=args.noise_std, select=args.select, seed=args.seed,
                halting=args.halting, settle_steps=args.settle_steps)
