"""Pure per-device train and eval steps (wrapped in `jax.pmap` by the Trainer).

Deep supervision with a persistent carry, as in the official TRM code: a fixed number of batch
slots; every call is one supervision step for every slot. Slots that halted on the previous call are
refilled on device from the fresh batch (`jnp.where`), with their recursion state reset, so shapes
stay static and no host sync is needed.

Randomness (halt exploration, dropout) is drawn for the whole *global* batch from the step key and
sliced by the device's position, so the trajectory does not depend on how many devices share the
batch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from trm_jax.config import ModelConfig, TrainingConfig
from trm_jax.models.trm import (IGNORE_LABEL, Carry, StepOutput, TinyRecursiveModel, compute_loss, initial_carry,
                                predict, supervision_step)
from trm_jax.training.state import TrainState, ema_update

AXIS = "batch"  # the pmap axis name


class TrainCarry(NamedTuple):
    """Per-slot training state that persists across optimizer steps."""

    y: jax.Array  # [b, R+L, D] answer state
    z: jax.Array  # [b, R+L, D] latent state
    inputs: jax.Array  # [b, L] int32: the slot's current sample
    labels: jax.Array  # [b, L] int32 (IGNORE_LABEL masked)
    difficulty: jax.Array  # [b] float32
    steps: jax.Array  # [b] int32: supervision steps this sample has had
    halted: jax.Array  # [b] bool: refill this slot on the next step


def empty_train_carry(batch: int, seq_len: int, total_len: int, dim: int) -> TrainCarry:
    """All slots halted, so the first step fills every slot from its batch. Host (NumPy-like) arrays."""
    import numpy as np

    state = np.zeros((batch, total_len, dim), np.float32)
    return TrainCarry(state, state.copy(), np.zeros((batch, seq_len), np.int32),
                      np.full((batch, seq_len), IGNORE_LABEL, np.int32), np.zeros((batch,), np.float32),
                      np.zeros((batch,), np.int32), np.ones((batch,), bool))


# Per-step metric sums; the host divides after accumulating a window (see metrics.summarize).
SUM_KEYS = ("loss", "ce", "halt_loss", "exact", "token_correct", "token_count", "samples", "halted", "depth",
            "difficulty")


def _where_rows(mask, new, old):
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


def _slice_global(x, offset, size):
    """Rows [offset, offset+size) of an array drawn for the whole global batch."""
    return jax.lax.dynamic_slice_in_dim(x, offset, size, axis=0)


def make_train_step(model: TinyRecursiveModel, tx: optax.GradientTransformation, lr_fn: Callable, *,
                    training: TrainingConfig, global_batch: int, peak_lr: float) -> Callable:
    """Build `train_step(state, carry, batch, rng) -> (state, carry, metrics)` for use under pmap(AXIS).

    `batch` holds this device's rows of the fresh global batch; `rng` is the same step key on every
    device; `lr_fn(step, peak)` gives the learning rate.
    """
    mcfg: ModelConfig = model.config
    max_depth = int(mcfg.max_recursion_depth)
    threshold = float(mcfg.halt_threshold)
    explore = float(training.halt_exploration_prob)
    decay = float(training.ema_decay)
    use_dropout = mcfg.dropout > 0

    def forward(params, tokens, carry: Carry, keys) -> StepOutput:
        if not use_dropout:
            return supervision_step(model, params, tokens, carry)

        # One dropout key per global sample: masks do not depend on the device split.
        def one(tok, y, z, key):
            out = supervision_step(model, params, tok[None], Carry(y[None], z[None]), rng=key)
            return jax.tree.map(lambda a: a[0], out)

        return jax.vmap(one)(tokens, carry.y, carry.z, keys)

    def train_step(state: TrainState, carry: TrainCarry, batch: dict, rng):
        b = carry.halted.shape[0]
        offset = jax.lax.axis_index(AXIS) * b
        k_explore, k_min, k_drop = jax.random.split(rng, 3)

        # 1. refill halted slots with fresh samples and reset their recursion state
        fresh = carry.halted
        inputs = _where_rows(fresh, batch["inputs"], carry.inputs)
        labels = _where_rows(fresh, batch["labels"], carry.labels)
        difficulty = _where_rows(fresh, batch["difficulty"].astype(jnp.float32), carry.difficulty)
        init = initial_carry(model, state.params, b)
        rec = Carry(_where_rows(fresh, init.y, carry.y), _where_rows(fresh, init.z, carry.z))
        steps = jnp.where(fresh, 0, carry.steps)
        drop_keys = _slice_global(jax.random.split(k_drop, global_batch), offset, b) if use_dropout else None

        # 2. one supervision step; loss = mean over this device's slots (pmean below -> global mean)
        def loss_fn(params):
            out = forward(params, inputs, rec, drop_keys)
            per_sample, aux = compute_loss(out.logits, out.halt_logits, labels,
                                           halt_loss_weight=mcfg.halt_loss_weight, loss_type=mcfg.loss)
            return per_sample.mean(), (out, per_sample, aux)

        (loss, (out, per_sample, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, AXIS)
        grad_norm = optax.tree.norm(grads)

        # 3. optimizer + EMA; a non-finite loss or gradient skips the update (counted, see Trainer)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        lr = lr_fn(state.step, peak_lr)
        new_params = optax.apply_updates(state.params, jax.tree.map(lambda u: -lr * u, updates))
        finite = jnp.isfinite(jax.lax.pmean(loss, AXIS)) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        params = keep(new_params, state.params)
        new_state = TrainState(
            step=state.step + 1,
            params=params,
            ema_params=keep(ema_update(state.ema_params, params, decay), state.ema_params),
            opt_state=keep(opt_state, state.opt_state),
            nonfinite=jnp.where(finite, 0, state.nonfinite + 1).astype(jnp.int32),
        )

        # 4. halting: halt head or step cap; exploration forces a random minimum depth on some slots
        steps = steps + 1
        halt_prob = jax.nn.sigmoid(jax.lax.stop_gradient(out.halt_logits).astype(jnp.float32))
        halted = (steps >= max_depth) | (halt_prob >= threshold)
        if explore > 0 and max_depth > 1:
            u = _slice_global(jax.random.uniform(k_explore, (global_batch,)), offset, b)
            min_steps = _slice_global(jax.random.randint(k_min, (global_batch,), 2, max_depth + 1), offset, b)
            halted = halted & (steps >= jnp.where(u < explore, min_steps, 0))
        halted = halted | ~finite  # a diverged carry must not linger
        new_carry = TrainCarry(out.carry.y, out.carry.z, inputs, labels, difficulty, steps, halted)

        sums = dict(loss=per_sample.sum(), ce=aux["ce"].sum(), halt_loss=aux["halt_loss"].sum(),
                    exact=aux["exact"].sum(), token_correct=aux["token_correct"].sum(),
                    token_count=aux["token_count"].sum(), samples=jnp.float32(b), halted=halted.sum(),
                    depth=jnp.where(halted, steps, 0).sum(), difficulty=difficulty.sum())
        metrics = jax.lax.psum({k: v.astype(jnp.float32) for k, v in sums.items()}, AXIS)
        metrics.update(lr=lr.astype(jnp.float32), grad_norm=grad_norm.astype(jnp.float32),
                       nonfinite=new_state.nonfinite)
        return new_state, new_carry, metrics

    return train_step


def make_eval_step(model: TinyRecursiveModel) -> Callable:
    """`eval_step(params, inputs, labels, valid) -> sums` with the model's while_loop predict."""

    def eval_step(params, inputs, labels, valid):
        pred = predict(model, params, inputs)
        mask = labels != IGNORE_LABEL
        correct = (pred.tokens == labels) & mask
        exact = (correct.sum(-1) == mask.sum(-1)) & valid
        v = valid.astype(jnp.float32)
        return dict(exact=exact.sum().astype(jnp.float32),
                    token_correct=(correct.sum(-1) * v).sum().astype(jnp.float32),
                    token_count=(mask.sum(-1) * v).sum().astype(jnp.float32),
                    steps=(pred.steps * v).sum().astype(jnp.float32), count=v.sum())

    return eval_step


# training keys the compiled step does not depend on: reset before the cache lookup
_LOOP_ONLY_KEYS = ("batch_size", "steps", "eval_every", "eval_batch_size", "log_every", "checkpoint_every",
                   "keep_checkpoints", "max_consecutive_nonfinite", "progress_bar", "learning_rate")


def compiled_train_step(model: TinyRecursiveModel, training: TrainingConfig, total_steps: int, global_batch: int,
                        peak_lr: float) -> Callable:
    """The pmapped train step for these settings, cached: trainers with the same model and step
    settings in one process (a resumed run, a notebook re-run, tests) reuse one compilation."""
    defaults = TrainingConfig()
    training = dataclasses.replace(training, **{k: getattr(defaults, k) for k in _LOOP_ONLY_KEYS})
    return _compiled_train_step(model, training, int(total_steps), int(global_batch), float(peak_lr))


@functools.lru_cache(maxsize=16)
def _compiled_train_step(model, training, total_steps, global_batch, peak_lr) -> Callable:
    from trm_jax.training.state import LRSchedule, make_optimizer

    fn = make_train_step(model, make_optimizer(training), LRSchedule(training, total_steps), training=training,
                         global_batch=global_batch, peak_lr=peak_lr)
    return pmap_train_step(fn)


@functools.lru_cache(maxsize=16)
def compiled_eval_step(model: TinyRecursiveModel) -> Callable:
    return pmap_eval_step(make_eval_step(model))


def pmap_train_step(train_step: Callable) -> Callable:
    """pmap over local devices; state and carry buffers are donated (updated in place)."""
    return jax.pmap(train_step, axis_name=AXIS, in_axes=(0, 0, 0, None), donate_argnums=(0, 1))


def pmap_eval_step(eval_step: Callable) -> Callable:
    return jax.pmap(eval_step, axis_name=AXIS)
