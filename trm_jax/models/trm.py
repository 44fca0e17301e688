"""TinyRecursiveModel: the Linen module plus the pure functions that drive its recursion.

The module holds the parameters and four small methods (embed, initial carry, network, heads). The
recursion itself lives in plain functions of `(params, inputs)` whose loops (`lax.scan`,
`lax.fori_loop`, `lax.while_loop`) call `model.apply(..., method=...)` once per network use, so loops
stay outside Linen's scope machinery and compile time does not grow with n*T.

Naming follows the paper: input embedding `x`, answer state `y`, latent `z`; `n` latent refinements
per cycle, `T` cycles per supervision step.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from trm_jax.config import ModelConfig
from trm_jax.models.layers import CHANNEL_PRE_ACTIVATION, RESIDUAL
from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.transformer import TransformerNetwork

IGNORE_LABEL = -100  # label value masked out of the loss and of exact-match


class Carry(NamedTuple):
    y: jax.Array  # answer state  [batch, registers + seq_len, dim]
    z: jax.Array  # latent state  [batch, registers + seq_len, dim]


class StepOutput(NamedTuple):
    carry: Carry
    logits: jax.Array  # [batch, seq_len, num_tokens]
    halt_logits: jax.Array  # [batch]


class TinyRecursiveModel(nn.Module):
    config: ModelConfig
    num_tokens: int
    seq_len: int  # tokens per sample, without register tokens

    def setup(self):
        cfg = self.config
        dim = cfg.dim
        normal = nn.initializers.normal
        self.input_embed = nn.Embed(self.num_tokens, dim, embedding_init=normal(1.0))  # torch Embedding: N(0, 1)
        self.output_init_embed = self.param("output_init_embed", normal(1e-2), (dim,))
        self.latent_init_embed = self.param("latent_init_embed", normal(1e-2), (dim,))
        if cfg.num_register_tokens:
            self.register_tokens = self.param("register_tokens", normal(1e-2), (cfg.num_register_tokens, dim))
        dtype = jnp.dtype(cfg.dtype)
        if cfg.network == "mixer":
            self.network = MLPMixer1D(dim, cfg.depth, self.total_len, cfg.expansion_factor,
                                      cfg.expansion_factor_token, cfg.dropout, cfg.gelu_approximate, dtype)
        else:
            self.network = TransformerNetwork(dim, cfg.depth, cfg.num_heads, cfg.mlp_expansion, cfg.rope_theta,
                                              cfg.dropout, dtype)
        self.to_pred = nn.Dense(self.num_tokens, use_bias=False)
        # zero init: the halt head starts at p=0.5 for every sample, as in the reference
        self.to_halt_pred = nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)

    @property
    def total_len(self) -> int:
        return self.seq_len + self.config.num_register_tokens

    def embed(self, tokens):
        x = self.input_embed(tokens)
        if self.config.num_register_tokens:
            regs = jnp.broadcast_to(self.register_tokens, (tokens.shape[0],) + self.register_tokens.shape)
            x = jnp.concatenate([regs, x], axis=1)
        return x

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.total_len, self.config.dim)
        return Carry(jnp.broadcast_to(self.output_init_embed, shape), jnp.broadcast_to(self.latent_init_embed, shape))

    @property
    def seq_first(self) -> bool:
        """Whether the network's native activation layout is [seq, batch, dim] (the mixer's; see mixer.py)."""
        return self.config.network == "mixer"

    def net(self, h, deterministic: bool = True, native: bool = False):
        """One network application; h is [batch, seq, dim], or the network's native layout if `native`."""
        if self.config.network == "mixer":
            return self.network(h, deterministic=deterministic, seq_first=native)
        return self.network(h, deterministic=deterministic)

    def heads(self, y):
        logits = self.to_pred(y[:, self.config.num_register_tokens:])
        halt_logits = self.to_halt_pred(y.mean(axis=1))[..., 0]
        return logits, halt_logits

    def __call__(self, tokens):
        """Used by `init`: one pass through every parameter."""
        x = self.embed(tokens)
        y, z = self.initial_carry(tokens.shape[0])
        z = self.net(x + y + z)
        y = self.net(y + z)
        return self.heads(y)

    # ---- functional conveniences (no Linen scope: they call apply) ----

    @nn.nowrap
    def init_params(self, rng) -> dict:
        return init_params(self, rng)

    @nn.nowrap
    def predict(self, params, tokens, *, halt_threshold=None, max_recursion_depth=None):
        return predict(self, params, tokens, halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth)


def init_params(model: TinyRecursiveModel, rng) -> dict:
    """Random parameters as a plain nested dict of arrays."""
    tokens = jnp.zeros((1, model.seq_len), jnp.int32)
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


def remat_policy(config: ModelConfig):
    """`(remat, policy)` for the network applications of the gradient cycle (`config.remat`).

    Measured on CPU at the reference configuration (see README, Performance): keeping every
    intermediate ("none") is the slowest and needs more memory than PyTorch; for the mixer, saving
    only the residual stream and the channel-mixing pre-activations (recomputing the token-mixing
    hidden layer, one matmul per block, in the backward pass) is as fast as saving all matmul outputs
    and needs half their memory; for the transformer, saving the matmul outputs ("dots") wins.
    """
    mode = config.remat
    if mode == "auto":
        mode = "mixer" if config.network == "mixer" else "dots"
    cp = jax.checkpoint_policies
    if mode == "none":
        return False, None
    if mode == "full":
        return True, None
    if mode == "dots":
        return True, cp.dots_with_no_batch_dims_saveable
    if mode == "mixer":
        return True, cp.save_only_these_names(RESIDUAL, CHANNEL_PRE_ACTIVATION)
    raise ValueError(f"unknown remat mode {mode!r}")


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
        use, policy = remat_policy(model.config)
        if use:
            fn = jax.checkpoint(fn, policy=policy, prevent_cse=False)
    return fn


def latent_recursion(model, params, x, carry: Carry, rng=None, cycle=0) -> Carry:
    """One cycle: z <- net(x + y + z) n times, then y <- net(y + z). Arrays are [batch, seq, dim]."""
    x, carry = _to_native(model, x), Carry(*(_to_native(model, a) for a in carry))
    return Carry(*(_to_native(model, a) for a in _latent_recursion(model, params, x, carry, rng, cycle)))


def _latent_recursion(model, params, x, carry: Carry, rng=None, cycle=0, remat=False) -> Carry:
    """latent_recursion on arrays in the network's native layout."""
    cfg = model.config
    n = cfg.num_latent_refinements
    net = _network_fn(model, params, rng, remat)
    y, z = carry

    def refine_latent(z, i):
        return net(x + y + z, cycle * (n + 1) + i), None

    z, _ = jax.lax.scan(refine_latent, z, jnp.arange(n), unroll=cfg.scan_unroll)
    y = net(y + z, cycle * (n + 1) + n)
    return Carry(y, z)


def _no_grad_cycles(model, params, x, carry, num_cycles, rng=None):
    """`num_cycles` cycles on stop-gradient inputs: differentiation sees constants, so no residuals are kept."""
    params, x, carry = jax.lax.stop_gradient((params, x, carry))
    return jax.lax.fori_loop(0, num_cycles, lambda c, cy: _latent_recursion(model, params, x, cy, rng, c), carry)


@functools.partial(jax.jit, static_argnums=0)
def supervision_step(model: TinyRecursiveModel, params, tokens, carry: Carry, rng=None) -> StepOutput:
    """One deep-supervision step: T-1 cycles without gradient, one with, then the heads.

    The incoming carry and the outgoing carry are both cut from the gradient. Jitted (the model is
    static), so eager callers get compiled code too; inside another jit/pmap it simply inlines.
    """
    T = model.config.num_refinement_blocks
    x = _to_native(model, _call(model, params, TinyRecursiveModel.embed, tokens))
    carry = Carry(*(_to_native(model, a) for a in carry))
    carry = _no_grad_cycles(model, params, x, carry, T - 1, rng)
    carry = _latent_recursion(model, params, x, carry, rng, T - 1, remat=True)
    carry = Carry(*(_to_native(model, a) for a in carry))
    logits, halt_logits = _call(model, params, TinyRecursiveModel.heads, carry.y)
    return StepOutput(jax.lax.stop_gradient(carry), logits, halt_logits)


# ---------------------------------------------------------------------------------------------- loss

def log_stablemax(logits, axis=-1):
    """log of stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) otherwise (official TRM recipe)."""
    s = jnp.where(logits >= 0, logits + 1.0, 1.0 / (1.0 - jnp.minimum(logits, 0.0)))
    return jnp.log(s) - jnp.log(jnp.sum(s, axis=axis, keepdims=True))


def token_cross_entropy(logits, labels, loss_type: str = "softmax"):
    """Per-token cross-entropy [batch, seq]; masked positions (IGNORE_LABEL) give 0."""
    logits = logits.astype(jnp.float32)
    logp = log_stablemax(logits) if loss_type == "stablemax" else jax.nn.log_softmax(logits)
    mask = labels != IGNORE_LABEL
    safe = jnp.where(mask, labels, 0)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.where(mask, nll, 0.0)


def compute_loss(logits, halt_logits, labels, *, halt_loss_weight: float = 1.0, loss_type: str = "softmax"):
    """The reference loss, per sample: mean token CE + halt_loss_weight * BCE(halt, all tokens correct).

    Returns (per_sample_loss [batch], aux) where aux holds per-sample `ce`, `halt_loss`,
    `exact` (all unmasked tokens correct), `token_correct` and `token_count`.
    """
    mask = labels != IGNORE_LABEL
    count = mask.sum(-1)
    ce = token_cross_entropy(logits, labels, loss_type).sum(-1) / jnp.maximum(count, 1)
    correct = (jnp.argmax(logits, -1) == labels) & mask
    exact = correct.sum(-1) == count
    halt_loss = sigmoid_bce(halt_logits.astype(jnp.float32), exact.astype(jnp.float32))
    total = ce + halt_loss_weight * halt_loss
    aux = dict(ce=ce, halt_loss=halt_loss, exact=exact, token_correct=correct.sum(-1), token_count=count)
    return total, aux


def sigmoid_bce(logits, targets):
    """Numerically stable binary cross-entropy with logits (matches F.binary_cross_entropy_with_logits)."""
    return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


# ----------------------------------------------------------------------------------------- inference

class Prediction(NamedTuple):
    tokens: jax.Array  # [batch, seq_len] predicted token ids at each sample's halting step
    steps: jax.Array  # [batch] supervision steps run before halting (recursion depth), >= 1
    halt_prob: jax.Array  # [batch] sigmoid(halt_logit) at the halting step


def predict(model: TinyRecursiveModel, params, tokens, *, halt_threshold=None, max_recursion_depth=None
            ) -> Prediction:
    """Recursive inference with per-sample halting, as one `lax.while_loop`.

    A sample halts when sigmoid(halt_logit) >= halt_threshold or at `max_recursion_depth` steps; its
    answer is frozen from then on. The loop ends when every sample has halted. Both knobs may be
    traced values: changing them does not recompile.
    """
    cfg = model.config
    threshold = cfg.halt_threshold if halt_threshold is None else halt_threshold
    depth = cfg.max_recursion_depth if max_recursion_depth is None else max_recursion_depth
    return _predict_jit(model, params, tokens, jnp.float32(threshold), jnp.int32(depth))


@functools.partial(jax.jit, static_argnums=0)
def _predict_jit(model, params, tokens, threshold, max_depth) -> Prediction:
    T = model.config.num_refinement_blocks
    batch = tokens.shape[0]
    x = _to_native(model, _call(model, params, TinyRecursiveModel.embed, tokens))
    carry0 = Carry(*(_to_native(model, a) for a in _call(model, params, TinyRecursiveModel.initial_carry, batch)))
    batch_axis = 1 if model.seq_first else 0

    def cond(state):
        step, _, _, halted = state
        return (step < max_depth) & ~jnp.all(halted)

    def body(state):
        step, carry, pred, halted = state
        new = jax.lax.fori_loop(0, T, lambda c, cy: _latent_recursion(model, params, x, cy, None, c), carry)
        logits, halt_logits = _call(model, params, TinyRecursiveModel.heads, _to_native(model, new.y))
        prob = jax.nn.sigmoid(halt_logits.astype(jnp.float32))
        step = step + 1
        halting_now = ~halted & ((prob >= threshold) | (step >= max_depth))
        pred = Prediction(
            jnp.where(halting_now[:, None], jnp.argmax(logits, -1).astype(jnp.int32), pred.tokens),
            jnp.where(halting_now, step, pred.steps),
            jnp.where(halting_now, prob, pred.halt_prob))
        keep = jnp.expand_dims(halted, (0, 2) if batch_axis else (1, 2))  # halted samples keep their state
        carry = Carry(jnp.where(keep, carry.y, new.y), jnp.where(keep, carry.z, new.z))
        return step, carry, pred, halted | halting_now

    pred0 = Prediction(jnp.zeros(tokens.shape, jnp.int32), jnp.zeros((batch,), jnp.int32),
                       jnp.zeros((batch,), jnp.float32))
    state = (jnp.int32(0), carry0, pred0, jnp.zeros((batch,), bool))
    _, _, pred, _ = jax.lax.while_loop(cond, body, state)
    return pred


def make_model(config: ModelConfig, num_tokens: Optional[int] = None, seq_len: int = 64) -> TinyRecursiveModel:
    """Build the module from a ModelConfig; `num_tokens` falls back to `config.num_tokens`."""
    num_tokens = num_tokens or config.num_tokens
    if not num_tokens:
        from trm_jax.errors import ConfigError
        raise ConfigError("config key 'model.num_tokens': vocabulary size unknown; set it or pass num_tokens")
    return TinyRecursiveModel(config, int(num_tokens), int(seq_len))
