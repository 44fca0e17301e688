"""TinyRecursiveModel: the Linen module plus the pure functions that drive its recursion.

The module takes any Flax network `[batch, seq, dim] -> [batch, seq, dim]` (as the PyPI package
`tiny-recursive-model` does) and holds the parameters of the edges around it: input embedding,
initial carry, output and halting heads. Two variants differ only at those edges:

- "pypi" (lucidrains): learned initial y/z vectors, optional register tokens, halting head = mean
  over positions, no bias, zero init; softmax cross-entropy by default.
- "official" (SamsungSAILMontreal/TinyRecursiveModels): puzzle-embedding prefix + token embedding
  scaled by sqrt(dim) (optional learned positions), fixed initial `H_init`/`L_init`, `q_head`
  (2 outputs, bias -5 at init) on position 0, `lm_head` after the prefix.

The recursion lives in plain functions of `(params, inputs)` whose loops (`lax.scan`,
`lax.fori_loop`, `lax.while_loop`) call `model.apply(..., method=...)` once per network use, so loops
stay outside Linen's scope machinery and compile time does not grow with n*T.

Naming follows the paper: input embedding `x`, answer state `y`, latent `z`; `n` latent refinements
per cycle, `T` cycles per supervision step; `recursion_depth` = supervision steps a sample ran.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from trm_jax.config import ModelConfig
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models.layers import truncated_normal_init
from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.transformer import TransformerNetwork

IGNORE_LABEL = -100  # label value masked out of the loss and of exact-match (trm_jax.data re-exports it)
PUZZLE_EMB = "puzzle_emb"  # top-level param name of the puzzle-embedding table (sparse updates)


class Carry(NamedTuple):
    y: jax.Array  # answer state  [batch, prefix + seq_len, dim]
    z: jax.Array  # latent state  [batch, prefix + seq_len, dim]


class StepOutput(NamedTuple):
    carry: Carry
    logits: jax.Array  # [batch, seq_len, num_tokens]
    halt_logits: jax.Array  # [batch]


def _accepts(module: nn.Module, arg: str) -> bool:
    try:
        return arg in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


class TinyRecursiveModel(nn.Module):
    """A TRM around any network. Mirrors `tiny_recursive_model.TinyRecursiveModel(dim, num_tokens,
    network, num_refinement_blocks, num_latent_refinements, halt_loss_weight, num_register_tokens)`.

    `seq_len` (tokens per sample, without prefix) is needed only to initialise parameters; it defaults
    to the network's own `seq_len` minus the prefix (the mixer's `seq_len` includes register tokens,
    as in the PyPI package). The remaining fields set the variant edges, inference defaults and
    compute knobs; `make_model(ModelConfig)` sets them from a config.
    """

    dim: int
    num_tokens: int
    network: nn.Module
    num_refinement_blocks: int = 3  # T
    num_latent_refinements: int = 6  # n
    halt_loss_weight: float = 1.0
    num_register_tokens: int = 0
    seq_len: Optional[int] = None
    max_recursion_depth: int = 16
    halt_threshold: float = 0.5
    loss: str = "softmax"
    variant: str = "pypi"
    num_puzzle_identifiers: int = 0
    puzzle_emb_ndim: int = 0
    puzzle_emb_len: int = 0  # 0 = ceil(puzzle_emb_ndim / dim), as the official code
    pos_encodings: str = "none"  # official variant: "learned" adds a position table to the input
    dtype: str = "float32"  # compute dtype of the edges; the network has its own
    scan_unroll: int = 1
    remat: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        if self.num_refinement_blocks < 2:
            raise ConfigError(f"num_refinement_blocks (T) must be >= 2, got {self.num_refinement_blocks}")
        if self.variant not in ("pypi", "official"):
            raise ConfigError(f"variant must be 'pypi' or 'official', got {self.variant!r}")
        if self.puzzle_emb_ndim and not self.num_puzzle_identifiers:
            raise ConfigError("puzzle_emb_ndim > 0 needs num_puzzle_identifiers > 0 (the table's rows)")

    # ---- static structure -------------------------------------------------------------------------

    @property
    def official(self) -> bool:
        return self.variant == "official"

    @property
    def prefix_len(self) -> int:
        """Positions in front of the tokens: register tokens (pypi) or the puzzle-embedding prefix."""
        if not self.official:
            return self.num_register_tokens
        if not self.puzzle_emb_ndim:
            return 0
        return self.puzzle_emb_len or -(-self.puzzle_emb_ndim // self.dim)

    @property
    def token_len(self) -> int:
        """Tokens per sample (without the prefix)."""
        if self.seq_len is not None:
            return int(self.seq_len)
        net_len = getattr(self.network, "seq_len", None)
        if net_len is None:
            raise TRMError("the model needs seq_len (tokens per sample) to initialise: pass "
                           "TinyRecursiveModel(..., seq_len=L) or a network with a seq_len attribute")
        return int(net_len) - self.prefix_len

    @property
    def total_len(self) -> int:
        return self.token_len + self.prefix_len

    @property
    def has_puzzle_emb(self) -> bool:
        return self.official and self.puzzle_emb_ndim > 0

    @property
    def seq_first(self) -> bool:
        """Whether the network's native activation layout is [seq, batch, dim] (declared by the network)."""
        return bool(getattr(self.network, "seq_first_native", False))

    # ---- parameters and edges ---------------------------------------------------------------------

    def setup(self):
        dim, V = self.dim, self.num_tokens
        if self.official:
            # official trm.py: embedding std 1/sqrt(hidden); CastedLinear = truncated LeCun normal
            self.embed_tokens = nn.Embed(V, dim, embedding_init=truncated_normal_init(1.0 / math.sqrt(dim)))
            if self.has_puzzle_emb:  # zero init (official CastedSparseEmbedding init_std=0)
                self.puzzle_table = self.param(PUZZLE_EMB, nn.initializers.zeros,
                                               (self.num_puzzle_identifiers, self.puzzle_emb_ndim))
            if self.pos_encodings == "learned":
                self.embed_pos = nn.Embed(self.total_len, dim,
                                          embedding_init=truncated_normal_init(1.0 / math.sqrt(dim)))
            # fixed initial states (official: trunc_normal std 1 buffers stored in the checkpoint)
            self.H_init = self.param("H_init", truncated_normal_init(1.0), (dim,))
            self.L_init = self.param("L_init", truncated_normal_init(1.0), (dim,))
            self.lm_head = nn.Dense(V, use_bias=False, kernel_init=truncated_normal_init(1.0 / math.sqrt(dim)))
            self.q_head = nn.Dense(2, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.constant(-5.0))
        else:
            normal = nn.initializers.normal
            self.input_embed = nn.Embed(V, dim, embedding_init=normal(1.0))  # torch Embedding: N(0, 1)
            self.output_init_embed = self.param("output_init_embed", normal(1e-2), (dim,))
            self.latent_init_embed = self.param("latent_init_embed", normal(1e-2), (dim,))
            if self.num_register_tokens:
                self.register_tokens = self.param("register_tokens", normal(1e-2), (self.num_register_tokens, dim))
            self.to_pred = nn.Dense(V, use_bias=False)
            # zero init: the halt head starts at p=0.5 for every sample, as in the reference
            self.to_halt_pred = nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)

    def embed(self, tokens, puzzle_ids=None, puzzle_delta=None):
        """x: [batch, prefix + seq_len, dim]. `puzzle_delta` [batch, ndim] is added to the gathered
        puzzle-embedding rows: the train step differentiates it (zeros) to get the rows' gradient
        without a gradient of the whole table."""
        batch = tokens.shape[0]
        if not self.official:
            x = self.input_embed(tokens)
            if self.num_register_tokens:
                regs = jnp.broadcast_to(self.register_tokens, (batch,) + self.register_tokens.shape)
                x = jnp.concatenate([regs, x], axis=1)
            return x
        dt = jnp.dtype(self.dtype)
        x = self.embed_tokens(tokens).astype(dt)
        if self.has_puzzle_emb:
            ids = jnp.zeros((batch,), jnp.int32) if puzzle_ids is None else puzzle_ids
            rows = jnp.take(self.puzzle_table, ids, axis=0)  # [batch, ndim]
            if puzzle_delta is not None:
                rows = rows + puzzle_delta
            rows = rows.astype(dt)
            pad = self.prefix_len * self.dim - self.puzzle_emb_ndim  # official: zero-pad to len * hidden
            if pad:
                rows = jnp.pad(rows, ((0, 0), (0, pad)))
            x = jnp.concatenate([rows.reshape(batch, self.prefix_len, self.dim), x], axis=1)
        if self.pos_encodings == "learned":  # official: scale by 1/sqrt(2) to keep the variance
            x = 0.707106781 * (x + self.embed_pos.embedding.astype(dt))
        return math.sqrt(self.dim) * x

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.total_len, self.dim)
        if self.official:  # fixed, not trained
            y0, z0 = jax.lax.stop_gradient(self.H_init), jax.lax.stop_gradient(self.L_init)
        else:
            y0, z0 = self.output_init_embed, self.latent_init_embed
        return Carry(jnp.broadcast_to(y0, shape), jnp.broadcast_to(z0, shape))

    def net(self, h, deterministic: bool = True, native: bool = False):
        """One network application; h is [batch, seq, dim], or the network's native layout if `native`."""
        kwargs = {}
        if native and self.seq_first:
            kwargs["seq_first"] = True
        if _accepts(self.network, "deterministic"):
            kwargs["deterministic"] = deterministic
        return self.network(h, **kwargs)

    def heads(self, y):
        """(logits [batch, seq_len, V], halt_logits [batch]) from the answer state y."""
        if self.official:
            logits = self.lm_head(y[:, self.prefix_len:])
            halt_logits = self.q_head(y[:, 0])[..., 0]  # q_halt; the official q_continue output is unused
        else:
            logits = self.to_pred(y[:, self.num_register_tokens:])
            halt_logits = self.to_halt_pred(y.mean(axis=1))[..., 0]
        return logits.astype(jnp.float32), halt_logits.astype(jnp.float32)

    def __call__(self, tokens, puzzle_ids=None):
        """Used by `init`: one pass through every parameter."""
        x = self.embed(tokens, puzzle_ids)
        y, z = self.initial_carry(tokens.shape[0])
        z = self.net(x + y + z)
        y = self.net(y + z)
        return self.heads(y)

    # ---- seed-style conveniences (no Linen scope: they call the pure functions) --------------------

    @nn.nowrap
    def init_params(self, rng) -> dict:
        return init_params(self, rng)

    @nn.nowrap
    def predict(self, params, tokens=None, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
                halt_prob_thres=None, max_deep_refinement_steps=None) -> "Prediction":
        """`model.predict(params, tokens)`; the PyPI package's keyword names are accepted too.

        `model.predict(tokens)` (the PyPI package's form, where the module owns its weights) uses the
        parameters the last `Trainer` run of this model in this process produced."""
        if tokens is None:
            tokens, params = params, TRAINED_PARAMS.get(self)
            if params is None:
                raise TRMError("model.predict(tokens) needs trained parameters: train this model with "
                               "Trainer(model, dataset)() first, or call model.predict(params, tokens)")
        return predict(self, params, tokens, puzzle_ids=puzzle_ids,
                       halt_threshold=halt_prob_thres if halt_threshold is None else halt_threshold,
                       max_recursion_depth=(max_deep_refinement_steps if max_recursion_depth is None
                                            else max_recursion_depth))


# model -> the params its last Trainer run produced (seed-style `model.predict(tokens)`); models are
# compared by value, like the jit cache compares them
TRAINED_PARAMS: dict = {}


def init_params(model: TinyRecursiveModel, rng) -> dict:
    """Random parameters as a plain nested dict of arrays."""
    tokens = jnp.zeros((1, model.token_len), jnp.int32)
    return jax.jit(model.init)(rng, tokens)["params"]


def _call(model, params, method, *args, rng=None, **kwargs):
    rngs = {"dropout": rng} if rng is not None else None
    return model.apply({"params": params}, *args, method=method, rngs=rngs, **kwargs)


@functools.partial(jax.jit, static_argnums=(0, 2))
def initial_carry(model: TinyRecursiveModel, params, batch_size: int) -> Carry:
    return _call(model, params, TinyRecursiveModel.initial_carry, batch_size)


def _to_native(model, a):
    """[batch, seq, dim] <-> the network's native layout (an involution: the same call converts back)."""
    return a.transpose(1, 0, 2) if model.seq_first else a


def remat_policy(model: TinyRecursiveModel):
    """`(remat, policy)` for the network applications of the gradient cycle (`model.remat`).

    Measured on CPU at the reference configuration (see README, Performance): keeping every
    intermediate ("none") is the slowest; a network may declare `remat_saveable_names` (the mixer
    saves only its residual stream and channel-mixing pre-activations, recomputing the token-mixing
    hidden layer), which "auto" uses; otherwise "auto" saves the matmul outputs ("dots").
    """
    cp = jax.checkpoint_policies
    mode = model.remat
    if mode == "none":
        return False, None
    if mode == "full":
        return True, None
    if mode == "dots":
        return True, cp.dots_with_no_batch_dims_saveable
    if mode == "auto":
        names = getattr(model.network, "remat_saveable_names", None)
        return True, cp.save_only_these_names(*names) if names else cp.dots_with_no_batch_dims_saveable
    raise ConfigError(f"unknown remat mode {mode!r}: use auto, none, dots or full")


def _network_fn(model, params, rng, remat: bool = False):
    """Returns net(h, i) on native-layout h: one network application; `i` distinguishes dropout keys.

    With `remat`, each application is a `jax.checkpoint` with the configured policy (used for the
    gradient cycle: it decides what is stored for the backward pass)."""
    if rng is None:
        fn = lambda h, i: _call(model, params, TinyRecursiveModel.net, h, native=True)  # noqa: E731
    else:
        fn = lambda h, i: _call(model, params, TinyRecursiveModel.net, h, deterministic=False,  # noqa: E731
                                native=True, rng=jax.random.fold_in(rng, i))
    if remat:
        use, policy = remat_policy(model)
        if use:
            fn = jax.checkpoint(fn, policy=policy, prevent_cse=False)
    return fn


def latent_recursion(model, params, x, carry: Carry, rng=None, cycle=0) -> Carry:
    """One cycle: z <- net(x + y + z) n times, then y <- net(y + z). Arrays are [batch, seq, dim]."""
    x, carry = _to_native(model, x), Carry(*(_to_native(model, a) for a in carry))
    return Carry(*(_to_native(model, a) for a in _latent_recursion(model, params, x, carry, rng, cycle)))


def _latent_recursion(model, params, x, carry: Carry, rng=None, cycle=0, remat=False) -> Carry:
    """latent_recursion on arrays in the network's native layout."""
    n = model.num_latent_refinements
    net = _network_fn(model, params, rng, remat)
    y, z = carry

    def refine_latent(z, i):
        return net(x + y + z, cycle * (n + 1) + i), None

    z, _ = jax.lax.scan(refine_latent, z, jnp.arange(n), unroll=model.scan_unroll)
    y = net(y + z, cycle * (n + 1) + n)
    return Carry(y, z)


def _no_grad_cycles(model, params, x, carry, num_cycles, rng=None):
    """`num_cycles` cycles on stop-gradient inputs: differentiation sees constants, so no residuals are kept."""
    params, x, carry = jax.lax.stop_gradient((params, x, carry))
    return jax.lax.fori_loop(0, num_cycles, lambda c, cy: _latent_recursion(model, params, x, cy, rng, c), carry)


def _embed(model, params, tokens, puzzle_ids, puzzle_delta=None):
    return _to_native(model, _call(model, params, TinyRecursiveModel.embed, tokens, puzzle_ids, puzzle_delta))


@functools.partial(jax.jit, static_argnums=0)
def supervision_step(model: TinyRecursiveModel, params, tokens, carry: Carry, rng=None, puzzle_ids=None,
                     puzzle_delta=None) -> StepOutput:
    """One deep-supervision step: T-1 cycles without gradient, one with, then the heads.

    The incoming carry and the outgoing carry are both cut from the gradient. `puzzle_ids` [batch]
    selects puzzle-embedding rows (official variant with a table); `puzzle_delta` is added to them
    (see `embed`). Jitted (the model is static), so
    eager callers get compiled code too; inside another jit/pmap it simply inlines.
    """
    T = model.num_refinement_blocks
    x = _embed(model, params, tokens, puzzle_ids, puzzle_delta)
    carry = Carry(*(_to_native(model, a) for a in carry))
    carry = _no_grad_cycles(model, params, x, carry, T - 1, rng)
    carry = _latent_recursion(model, params, x, carry, rng, T - 1, remat=True)
    carry = Carry(*(_to_native(model, a) for a in carry))
    logits, halt_logits = _call(model, params, TinyRecursiveModel.heads, carry.y)
    return StepOutput(jax.lax.stop_gradient(carry), logits, halt_logits)


# ---------------------------------------------------------------------------------------------- loss

def log_stablemax(logits, axis=-1):
    """log of stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) otherwise (official TRM losses.py).

    The official code evaluates it in float64; here float32, in log space: log s(x) = log1p(x) or
    -log1p(-x), so no intermediate overflows or underflows (tested against a float64 reference)."""
    log_s = jnp.where(logits >= 0, jnp.log1p(jnp.maximum(logits, 0.0)), -jnp.log1p(-jnp.minimum(logits, 0.0)))
    return log_s - jax.nn.logsumexp(log_s, axis=axis, keepdims=True)


def token_cross_entropy(logits, labels, loss_type: str = "softmax"):
    """Per-token cross-entropy [batch, seq]; masked positions (IGNORE_LABEL) give 0."""
    logits = logits.astype(jnp.float32)
    logp = log_stablemax(logits) if loss_type == "stablemax" else jax.nn.log_softmax(logits)
    mask = labels != IGNORE_LABEL
    safe = jnp.where(mask, labels, 0)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.where(mask, nll, 0.0)


def token_matches(predicted, labels):
    """Per-sample (token_correct, token_count, exact) for predicted token ids against labels.

    The one accuracy definition: masked positions (IGNORE_LABEL) are skipped; a sample is exact when
    every unmasked token is right. Used by the loss, the eval step and `evaluate`."""
    mask = labels != IGNORE_LABEL
    count = mask.sum(-1)
    correct = ((predicted == labels) & mask).sum(-1)
    return correct, count, correct == count


def compute_loss(logits, halt_logits, labels, *, halt_loss_weight: float = 1.0, loss_type: str = "softmax"):
    """The reference loss, per sample: mean token CE + halt_loss_weight * BCE(halt, all tokens correct).

    Returns (per_sample_loss [batch], aux) where aux holds per-sample `ce`, `halt_loss`,
    `exact` (all unmasked tokens correct), `token_correct` and `token_count`.
    """
    correct, count, exact = token_matches(jnp.argmax(logits, -1), labels)
    ce = token_cross_entropy(logits, labels, loss_type).sum(-1) / jnp.maximum(count, 1)
    halt_loss = sigmoid_bce(halt_logits.astype(jnp.float32), exact.astype(jnp.float32))
    total = ce + halt_loss_weight * halt_loss
    aux = dict(ce=ce, halt_loss=halt_loss, exact=exact, token_correct=correct, token_count=count)
    return total, aux


def model_loss(model: TinyRecursiveModel, out: StepOutput, labels):
    """compute_loss with the model's own loss type and halt weight."""
    return compute_loss(out.logits, out.halt_logits, labels, halt_loss_weight=model.halt_loss_weight,
                        loss_type=model.loss)


def sigmoid_bce(logits, targets):
    """Binary cross-entropy with logits (F.binary_cross_entropy_with_logits): value and gradient.

    softplus, not max(x, 0) + log1p(exp(-|x|)): that form has gradient -t at x = 0, where every halt
    logit of a zero-initialised head starts, so the head never learned from wrong answers."""
    return jax.nn.softplus(logits) - logits * targets


# ----------------------------------------------------------------------------------------- inference

# A halt threshold above 1: no sample halts early, every one runs max_recursion_depth supervision steps
# (how the official code evaluates).
NO_EARLY_HALT = 2.0

class _PredictionFields(NamedTuple):
    tokens: jax.Array  # [batch, seq_len] predicted token ids at each sample's halting step
    recursion_depth: jax.Array  # [batch] supervision steps run before halting, >= 1


class Prediction(_PredictionFields):
    """`(tokens, recursion_depth)` as the PyPI package's `predict` returns `(preds, exited_steps)`, so
    `preds, depth = model.predict(...)` works; `halt_prob` [batch] (sigmoid(halt_logit) at the halting
    step) rides along as an attribute."""

    def __new__(cls, tokens, recursion_depth, halt_prob=None):
        self = super().__new__(cls, tokens, recursion_depth)
        self.halt_prob = halt_prob
        return self

    @property
    def steps(self) -> jax.Array:
        """The PyPI package's name for `recursion_depth`."""
        return self.recursion_depth


# a pytree of all three arrays (jax.device_get, jax.tree.map keep halt_prob), registered ahead of
# JAX's namedtuple handling, which would see only the two tuple fields
jax.tree_util.register_pytree_node(Prediction, lambda p: ((p.tokens, p.recursion_depth, p.halt_prob), None),
                                   lambda _, children: Prediction(*children))


def predict(model: TinyRecursiveModel, params, tokens, *, puzzle_ids=None, halt_threshold=None,
            max_recursion_depth=None, compact: bool = True) -> Prediction:
    """Recursive inference with per-sample halting.

    A sample halts when sigmoid(halt_logit) >= halt_threshold or at `max_recursion_depth` steps; its
    answer is frozen from then on, and inference ends when every sample has halted. Both knobs may be
    traced values: changing them does not recompile. A threshold above 1 never halts early (every
    sample runs `max_recursion_depth` steps: the official repo's evaluation).

    Called eagerly (not under jit) with `compact`, the loop leaves its `lax.while_loop` whenever half
    of the still-active samples have halted, and the host moves the active ones into a batch of the
    next power of two below (one sync per halving, one compilation per bucket size, cached), so halted
    samples stop costing compute. Each sample's computation does not depend on the others, so the
    result equals the single-loop one; under jit it is that single `lax.while_loop`.
    """
    threshold = model.halt_threshold if halt_threshold is None else halt_threshold
    depth = model.max_recursion_depth if max_recursion_depth is None else max_recursion_depth
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.ndim != 2:
        raise TRMError(f"predict expects tokens of shape [batch, seq_len], got {tokens.shape}")
    ids = None if puzzle_ids is None else jnp.asarray(puzzle_ids, jnp.int32)
    threshold, depth = jnp.float32(threshold), jnp.int32(depth)
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((params, tokens, ids, threshold, depth)))
    if traced or not compact or tokens.shape[0] < 2 * MIN_BUCKET:
        return Prediction(*_predict_jit(model, params, tokens, ids, threshold, depth))
    return _predict_compacting(model, params, tokens, ids, threshold, depth)


MIN_BUCKET = 8  # smallest batch the compacting predict shrinks to


def _batch_axis(model) -> int:
    return 1 if model.seq_first else 0


@functools.partial(jax.jit, static_argnums=0)
def _start(model, params, tokens, puzzle_ids):
    """(x, initial carry) in the network's native layout."""
    x = _embed(model, params, tokens, puzzle_ids)
    carry = _call(model, params, TinyRecursiveModel.initial_carry, tokens.shape[0])
    return x, Carry(*(_to_native(model, a) for a in carry))


@functools.partial(jax.jit, static_argnums=0)
def _run(model, params, x, carry, pred, halted, step, threshold, max_depth, min_active):
    """Supervision steps until all samples halted, `max_depth` steps ran, or at most `min_active`
    samples are still active. Returns (step, carry, pred, halted)."""
    T = model.num_refinement_blocks
    batch_axis = _batch_axis(model)

    def cond(state):
        step, _, _, halted = state
        return (step < max_depth) & (jnp.sum(~halted) > min_active)

    def body(state):
        step, carry, pred, halted = state
        new = jax.lax.fori_loop(0, T, lambda c, cy: _latent_recursion(model, params, x, cy, None, c), carry)
        logits, halt_logits = _call(model, params, TinyRecursiveModel.heads, _to_native(model, new.y))
        prob = jax.nn.sigmoid(halt_logits)
        step = step + 1
        halting_now = ~halted & ((prob >= threshold) | (step >= max_depth))
        pred = (jnp.where(halting_now[:, None], jnp.argmax(logits, -1).astype(jnp.int32), pred[0]),
                jnp.where(halting_now, step, pred[1]), jnp.where(halting_now, prob, pred[2]))
        keep = jnp.expand_dims(halted, (0, 2) if batch_axis else (1, 2))  # halted samples keep their state
        carry = Carry(jnp.where(keep, carry.y, new.y), jnp.where(keep, carry.z, new.z))
        return step, carry, pred, halted | halting_now

    return jax.lax.while_loop(cond, body, (step, carry, pred, halted))


def _empty_prediction(batch: int, seq_len: int):
    return (jnp.zeros((batch, seq_len), jnp.int32), jnp.zeros((batch,), jnp.int32), jnp.zeros((batch,), jnp.float32))


@functools.partial(jax.jit, static_argnums=0)
def _predict_jit(model, params, tokens, puzzle_ids, threshold, max_depth):
    """(tokens, recursion_depth, halt_prob) from one while_loop over all supervision steps."""
    batch = tokens.shape[0]
    x, carry = _start(model, params, tokens, puzzle_ids)
    pred0 = _empty_prediction(batch, tokens.shape[1])
    _, _, pred, _ = _run(model, params, x, carry, pred0, jnp.zeros((batch,), bool), jnp.int32(0), threshold,
                         max_depth, jnp.int32(0))
    return pred


@functools.partial(jax.jit, static_argnums=0)
def _compact(model, x, carry, index):
    """Rows `index` of the per-sample state (the active samples, padded with halted copies)."""
    axis = _batch_axis(model)
    take = lambda a: jnp.take(a, index, axis=axis)  # noqa: E731
    return take(x), Carry(take(carry.y), take(carry.z))


def _predict_compacting(model, params, tokens, puzzle_ids, threshold, max_depth) -> Prediction:
    import numpy as np

    batch, seq = tokens.shape
    out = [np.zeros((batch, seq), np.int32), np.zeros(batch, np.int32), np.zeros(batch, np.float32)]
    rows = np.arange(batch)  # original sample of each slot; -1 = padding
    x, carry = _start(model, params, tokens, puzzle_ids)
    halted = np.zeros(batch, bool)
    step = jnp.int32(0)
    while True:
        size = len(rows)
        final = size <= MIN_BUCKET
        step, carry, pred, halted_d = _run(model, params, x, carry, _empty_prediction(size, seq), jnp.asarray(halted),
                                           step, threshold, max_depth, jnp.int32(0 if final else size // 2))
        pred, halted_now = jax.device_get(pred), np.asarray(halted_d)
        done = halted_now & ~halted & (rows >= 0)  # halted during this segment
        for o, p in zip(out, pred):
            o[rows[done]] = p[done]
        active = np.nonzero(~halted_now)[0]
        if final or active.size == 0 or int(step) >= int(max_depth):
            break
        bucket = max(MIN_BUCKET, 1 << (int(active.size) - 1).bit_length())
        pad = bucket - active.size
        index = np.concatenate([active, np.full(pad, active[0])])
        x, carry = _compact(model, x, carry, jnp.asarray(index))
        rows = np.concatenate([rows[active], np.full(pad, -1)])
        halted = np.concatenate([np.zeros(active.size, bool), np.ones(pad, bool)])
    return Prediction(*(jnp.asarray(o) for o in out))


# ------------------------------------------------------------------------------------ from a config

def make_network(config: ModelConfig, total_len: int) -> nn.Module:
    """The network of `config.network` for sequences of `total_len` positions (prefix included)."""
    dtype = jnp.dtype(config.dtype)
    if config.network == "mixer":
        return MLPMixer1D(config.dim, config.depth, total_len, config.expansion_factor,
                          config.expansion_factor_token, config.dropout, config.gelu_approximate, dtype)
    return TransformerNetwork(config.dim, config.depth, config.num_heads, config.mlp_expansion, config.rope_theta,
                              config.dropout, dtype, mlp_t=config.mlp_t, seq_len=total_len,
                              use_rope=config.pos_encodings == "rope", rms_norm_eps=config.rms_norm_eps)


_MODEL_FIELDS = ("num_refinement_blocks", "num_latent_refinements", "halt_loss_weight", "num_register_tokens",
                 "max_recursion_depth", "halt_threshold", "loss", "variant", "num_puzzle_identifiers",
                 "puzzle_emb_ndim", "puzzle_emb_len", "pos_encodings", "dtype", "scan_unroll", "remat")


def make_model(config: ModelConfig, num_tokens: Optional[int] = None, seq_len: int = 64) -> TinyRecursiveModel:
    """The one place where a ModelConfig becomes a model; `num_tokens` falls back to `config.num_tokens`,
    `seq_len` is tokens per sample (without prefix)."""
    num_tokens = num_tokens or config.num_tokens
    if not num_tokens:
        raise ConfigError("config key 'model.num_tokens': vocabulary size unknown; set it or pass num_tokens")
    kwargs = {k: getattr(config, k) for k in _MODEL_FIELDS}
    if config.variant == "official":
        kwargs["num_register_tokens"] = 0
    probe = TinyRecursiveModel(config.dim, int(num_tokens), None, seq_len=int(seq_len), **kwargs)
    network = make_network(config, probe.total_len)
    return TinyRecursiveModel(config.dim, int(num_tokens), network, seq_len=int(seq_len), **kwargs)


def model_config(model: TinyRecursiveModel) -> Optional[ModelConfig]:
    """The ModelConfig that `make_model` would turn into this model, or None for a network that no
    config describes (a user-defined network): a run directory can then store weights but not rebuild
    the network."""
    net = model.network
    common = {k: getattr(model, k) for k in _MODEL_FIELDS}
    common.update(dim=model.dim, num_tokens=model.num_tokens)
    if isinstance(net, MLPMixer1D):
        cfg = ModelConfig(network="mixer", depth=net.depth, expansion_factor=net.expansion_factor,
                          expansion_factor_token=net.expansion_factor_token, dropout=net.dropout,
                          gelu_approximate=net.approximate_gelu, **common)
    elif isinstance(net, TransformerNetwork):
        pos = model.pos_encodings if model.pos_encodings == "learned" else ("rope" if net.use_rope else "none")
        common["pos_encodings"] = pos
        cfg = ModelConfig(network="transformer", depth=net.depth, num_heads=net.num_heads,
                          mlp_expansion=net.mlp_expansion, rope_theta=net.rope_theta, dropout=net.dropout,
                          mlp_t=net.mlp_t, rms_norm_eps=net.rms_norm_eps, **common)
    else:
        return None
    return cfg if make_model(cfg, model.num_tokens, model.token_len).network == net else None
