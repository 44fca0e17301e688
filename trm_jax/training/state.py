"""Train state, optimizer, learning-rate schedule and parameter EMA.

The optimizer is an optax chain *without* the learning rate: the step multiplies its output by
`-lr(step)` where `step` is the global step kept in the TrainState. The schedule therefore survives
an optimizer-state rebuild (curriculum width growth), and each curriculum stage can set its own peak
rate without touching the optimizer state.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from trm_jax.config import TrainingConfig


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken (global, across curriculum stages)
    params: Any
    ema_params: Any
    opt_state: Any
    nonfinite: jax.Array  # int32 scalar: consecutive steps skipped for a non-finite loss/gradient


def create_train_state(params, tx: optax.GradientTransformation, *, step: int = 0, ema_params=None) -> TrainState:
    params = jax.tree.map(jnp.asarray, params)
    ema = params if ema_params is None else jax.tree.map(jnp.asarray, ema_params)
    return TrainState(step=jnp.int32(step), params=params, ema_params=ema, opt_state=tx.init(params),
                      nonfinite=jnp.int32(0))


def ema_update(ema_params, new_params, decay: float):
    """ema <- decay * ema + (1 - decay) * params; decay 0 means the EMA is the params themselves."""
    return optax.incremental_update(new_params, ema_params, step_size=1.0 - decay)


# ------------------------------------------------------------------------------------------ optimizer

class ScaleByAdamAtan2State(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any


def scale_by_adam_atan2(b1: float = 0.9, b2: float = 0.95, a: float = 1.27, b: float = 1.0
                        ) -> optax.GradientTransformation:
    """Adam-atan2 (Everett et al. 2024; the official TRM optimizer): a * atan2(m_hat, b * sqrt(v_hat)).

    atan2 replaces m / (sqrt(v) + eps): it is bounded and scale invariant, so no epsilon is needed.
    """

    def init_fn(params):
        return ScaleByAdamAtan2State(jnp.zeros([], jnp.int32), optax.tree.zeros_like(params),
                                     optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        mu_hat = optax.tree.bias_correction(mu, b1, count)
        nu_hat = optax.tree.bias_correction(nu, b2, count)
        out = jax.tree.map(lambda m, v: a * jnp.arctan2(m, b * jnp.sqrt(v)), mu_hat, nu_hat)
        return out, ScaleByAdamAtan2State(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def _decay_mask(params):
    # Matrices and embeddings decay; norm scales, biases and init vectors do not (the usual AdamW practice).
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: TrainingConfig) -> optax.GradientTransformation:
    """Clip -> Adam(W) or Adam-atan2 -> decoupled weight decay. Scaled by -lr in the train step."""
    parts = []
    if cfg.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
    if cfg.optimizer == "adam_atan2":
        parts.append(scale_by_adam_atan2(cfg.beta1, cfg.beta2))
    else:
        parts.append(optax.scale_by_adam(cfg.beta1, cfg.beta2, eps=cfg.adam_eps))
    if cfg.weight_decay > 0:
        parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask))
    return optax.chain(*parts)


# ------------------------------------------------------------------------------------------- schedule

class LRSchedule:
    """Linear warmup to the peak, then cosine decay to `min_lr_ratio * peak` (or constant).

    The shape is a function of the global step over the whole run (`total_steps`, all curriculum
    stages); `peak` is passed per call so a curriculum stage can scale it.
    """

    def __init__(self, cfg: TrainingConfig, total_steps: int):
        self.warmup = int(cfg.warmup_steps)
        self.total = max(int(total_steps), 1)
        self.kind = cfg.lr_schedule
        self.min_ratio = float(cfg.min_lr_ratio)

    def factor(self, step):
        """Multiplier in [0, 1] for the update taken at `step` (0-based)."""
        s = jnp.asarray(step, jnp.float32) + 1.0  # the first update already gets a non-zero rate
        warm = jnp.minimum(1.0, s / self.warmup) if self.warmup > 0 else jnp.float32(1.0)
        if self.kind == "constant":
            return warm
        span = max(self.total - self.warmup, 1)
        progress = jnp.clip((s - self.warmup) / span, 0.0, 1.0)
        cosine = self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + jnp.cos(math.pi * progress))
        return jnp.where(s <= self.warmup, warm, cosine)

    def __call__(self, step, peak: float):
        return peak * self.factor(step)
