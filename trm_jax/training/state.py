"""Train state, optimizer, learning-rate schedule and parameter EMA.

The optimizer is an optax chain *without* the learning rate: the step multiplies its output by
`-lr(step)` where `step` is the global step kept in the TrainState. The schedule therefore survives
an optimizer-state rebuild (curriculum width growth), and each curriculum stage can set its own peak
rate without touching the optimizer state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from trm_jax.models import PUZZLE_EMB


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken (global, across curriculum stages)
    params: Any
    ema_params: Any
    opt_state: Any
    nonfinite: jax.Array  # int32 scalar: consecutive steps skipped for a non-finite loss/gradient


def split_table(params):
    """(params without the puzzle-embedding table, the table or None). The table is trained by sparse
    sign-SGD in the train step: no optimizer state and no EMA copy of it exist (official recipe: it is a
    buffer, outside both)."""
    if isinstance(params, dict) and PUZZLE_EMB in params:
        return {k: v for k, v in params.items() if k != PUZZLE_EMB}, params[PUZZLE_EMB]
    return params, None


def make_train_state(params, tx: optax.GradientTransformation, *, step: int = 0, ema_params=None) -> TrainState:
    """A TrainState at `step` whose EMA starts at `ema_params` (default: `params`); the puzzle table
    (if any) gets neither optimizer state nor an EMA copy."""
    params = jax.tree.map(jnp.asarray, params)
    dense, _ = split_table(params)
    ema = dense if ema_params is None else split_table(jax.tree.map(jnp.asarray, ema_params))[0]
    return TrainState(step=jnp.int32(step), params=params, ema_params=ema, opt_state=tx.init(dense),
                      nonfinite=jnp.int32(0))


def inference_params(state: TrainState, which: str = "ema"):
    """The params to predict with: the EMA (or raw) weights plus the live puzzle-embedding table."""
    if which != "ema":
        return state.params
    _, table = split_table(state.params)
    return state.ema_params if table is None else {**state.ema_params, PUZZLE_EMB: table}


def ema_update(ema_params, new_params, decay):
    """ema <- decay * ema + (1 - decay) * params; decay 0 means the EMA is the params themselves."""
    return optax.incremental_update(new_params, ema_params, step_size=1.0 - decay)


def ema_decay_at(step, decay: float, warmup: bool):
    """The EMA decay of the update taken at `step` (0-based, the TrainState's step before it).

    With `warmup`, min(decay, (1 + step) / (10 + step)): 0.1 at the first update, 0.5 at step 8, 0.9 at
    step 80, 0.99 at step 890. The EMA starts at the initial weights, so a constant decay keeps
    decay**t of them after t steps (37% after 1,000 steps at 0.999); the ramp forgets them within the
    first steps and lengthens the average as the run goes, so a short run evaluates near-current
    weights. The ramp is the one of TensorFlow's ExponentialMovingAverage(num_updates=...); bias
    correction (Adam-style, an EMA from zero divided by 1 - decay**t) would give similar weights but
    store an EMA that is only usable after the correction, where this one is read as it is (evaluate,
    checkpoints, load). Without `warmup`: `decay` from the first step (the official recipe's EMA).
    """
    if not warmup:
        return jnp.float32(decay)
    t = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


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


def make_optimizer(cfg) -> optax.GradientTransformation:
    """Clip -> Adam(W) or Adam-atan2 -> decoupled weight decay. Scaled by -lr in the train step.
    `cfg` is a TrainingConfig or a StepSpec (the fields read here)."""
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
    stages), built from optax schedules with peak 1; `peak` is passed per call so a curriculum stage
    (or the puzzle-embedding table) can scale it. `cfg` is a TrainingConfig or a StepSpec.
    """

    def __init__(self, cfg, total_steps: int):
        warmup = int(cfg.warmup_steps)
        total = max(int(total_steps), warmup + 1)
        if cfg.lr_schedule == "constant":
            shape = optax.join_schedules([optax.linear_schedule(0.0, 1.0, max(warmup, 1)),
                                          optax.constant_schedule(1.0)], [warmup])
        else:
            shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total, end_value=float(cfg.min_lr_ratio))
        self._shape = shape

    def factor(self, step):
        """Multiplier in [0, 1] for the update taken at `step` (0-based): the first update already gets a
        non-zero rate (the schedule is read at step + 1)."""
        return jnp.asarray(self._shape(jnp.asarray(step, jnp.int32) + 1), jnp.float32)

    def __call__(self, step, peak: float):
        return peak * self.factor(step)
