"""predict: recursive inference with per-sample halting (one `while_loop`; eager calls compact the batch),
optionally as K noisy trajectories per sample, one of which is chosen.

The loop's state is `(step, carry, prediction, halted)`; `predict_step` (one supervision step of every
still-active row) is its body, shared by the single loop and the compacting one. Trajectories are rows
too (trajectories.py: keys, noise, choice).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import TRMError
from trm_jax.models.recursion import Carry, apply_method, carry_to_native, embed_native, run_cycles, to_native
from trm_jax.models.trajectories import (DEFAULT_NOISE_ON, NOISE_ON, LatentNoise, Trajectories, as_trajectories,
                                         check_options, chosen_index, row_keys, sample_keys, step_noise,
                                         take_trajectory, tile_rows)

# A halt threshold above 1: no sample halts early, every one runs max_recursion_depth supervision steps
# (how the official code evaluates).
NO_EARLY_HALT = 2.0

MIN_BUCKET = 8  # smallest batch the compacting predict shrinks to


def power_of_two_at_least(n: int) -> int:
    """The smallest power of two >= n: batch sizes padded to it reuse a few compiled programs."""
    return 1 << max(0, (int(n) - 1).bit_length())


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


def predict(model, params, tokens, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
            compact: bool = True, trajectories: int = 1, noise_std=None, select: str = "halt",
            rng=None) -> Prediction:
    """Recursive inference with per-sample halting.

    A sample halts when sigmoid(halt_logit) >= halt_threshold or at `max_recursion_depth` steps; its
    answer is frozen from then on, and inference ends when every sample has halted. Both knobs may be
    traced values: changing them does not recompile, and a depth above the one the model trained with
    simply runs more steps. A threshold above 1 never halts early (every sample runs
    `max_recursion_depth` steps: the official repo's evaluation).

    `trajectories=K` runs each sample as K trajectories in the same batch, Gaussian noise of scale
    `noise_std` (default `DEFAULT_NOISE_STD` when K > 1) added to the answer state y before every
    supervision step (`predict_trajectories` can put it on the latent z); each halts on its own, and per
    sample the answer is the trajectory with the highest final halt logit (`select="halt"`) or the
    answer most trajectories give (`select="vote"`, ties by their mean halt probability; the first such
    trajectory's depth and halt probability are reported). `rng` (an int seed, a PRNG key, or one key
    per sample; None = seed 0) keys the noise: the same key gives the same answers. K and `select` are
    static; `noise_std` and `rng` may be traced. K = 1 without `noise_std` is the plain computation (no
    noise, no keys).

    Called eagerly (not under jit) with `compact`, the loop leaves its `lax.while_loop` whenever half
    of the still-active rows have halted, and the host moves the active ones into a batch of the
    next power of two below (one sync per halving, one compilation per bucket size, cached), so halted
    rows stop costing compute. Each row's computation does not depend on the others, so the result
    equals the single-loop one; under jit it is that single `lax.while_loop`.
    """
    noise_std = check_options(trajectories, noise_std, select)
    result = predict_trajectories(model, params, tokens, puzzle_ids=puzzle_ids, halt_threshold=halt_threshold,
                                  max_recursion_depth=max_recursion_depth, compact=compact,
                                  trajectories=trajectories, noise_std=noise_std, rng=rng)
    if trajectories == 1:
        chosen = tuple(a[0] for a in result)
    else:
        chosen = _choose(result, select)
    tokens, depth, halt_logit = chosen
    return Prediction(tokens, depth, jax.nn.sigmoid(halt_logit))


def predict_trajectories(model, params, tokens, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
                         compact: bool = True, trajectories: int = 1, noise_std=None, rng=None,
                         noise_on: str = DEFAULT_NOISE_ON) -> Trajectories:
    """Every trajectory's answer, depth and final halt logit ([K, batch] leading axes), before the choice
    `predict` makes: for callers that vote over trajectories themselves (ARC's augmentation vote) or
    compare choices. `noise_std=None` adds no noise (K identical trajectories); `noise_on` is the carry
    state the noise is added to: "y" (the answer state), "z" (the latent) or "both"; see `predict`."""
    check_options(trajectories, noise_std, "halt")
    if noise_on not in NOISE_ON:
        raise TRMError(f"noise_on must be one of {NOISE_ON} (the state the noise is added to), got {noise_on!r}")
    threshold = model.halt_threshold if halt_threshold is None else halt_threshold
    max_recursion_depth = model.max_recursion_depth if max_recursion_depth is None else max_recursion_depth
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.ndim != 2:
        raise TRMError(f"predict expects tokens of shape [batch, seq_len], got {tokens.shape}")
    model = model.sized_for(tokens.shape[1])
    ids = None if puzzle_ids is None else jnp.asarray(puzzle_ids, jnp.int32)
    threshold, max_recursion_depth = jnp.float32(threshold), jnp.int32(max_recursion_depth)
    keys = None
    if noise_std is not None:
        noise_std, keys = jnp.float32(noise_std), sample_keys(rng, tokens.shape[0])
    args = (model, params, tokens, ids, threshold, max_recursion_depth, trajectories, noise_std, keys, noise_on)
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args[1:6] + args[7:9]))
    if traced or not compact or trajectories * tokens.shape[0] < 2 * MIN_BUCKET:
        rows = _predict_jit(*args)
    else:
        rows = _predict_compacting(*args)
    return as_trajectories(*rows, trajectories)


@functools.partial(jax.jit, static_argnames="select")
def _choose(result: Trajectories, select: str) -> tuple:
    """(tokens, recursion_depth, halt_logit) [batch, ...] of each sample's chosen trajectory."""
    return take_trajectory(result, chosen_index(result, select))


def _batch_axis(model) -> int:
    return 1 if model.seq_first else 0


@functools.partial(jax.jit, static_argnums=(0, 4))
def _start(model, params, tokens, puzzle_ids, trajectories, noise_std, keys):
    """(x, initial carry, noise or None) for K trajectories of every sample, in the network's native layout."""
    tokens, puzzle_ids = tile_rows(tokens, trajectories), tile_rows(puzzle_ids, trajectories)
    x = embed_native(model, params, tokens, puzzle_ids)
    carry = carry_to_native(model, apply_method(model, params, "initial_carry", tokens.shape[0]))
    noise = None if noise_std is None else LatentNoise(noise_std, row_keys(keys, trajectories))
    return x, carry, noise


def _perturbed(model, carry: Carry, noise: LatentNoise, step, noise_on: str) -> Carry:
    """The carry with this step's noise added to y, z or both (`noise_on`)."""
    y, z = carry_to_native(model, carry)  # [rows, positions, dim]
    if noise_on in ("z", "both"):
        z = z + step_noise(noise, 2 * step, z.shape[1:], z.dtype)
    if noise_on in ("y", "both"):
        y = y + step_noise(noise, 2 * step + 1, y.shape[1:], y.dtype)
    return carry_to_native(model, Carry(y, z))


def predict_step(model, params, x, state, threshold, max_recursion_depth, noise=None,
                 noise_on: str = DEFAULT_NOISE_ON):
    """One supervision step of the predict loop on native-layout `x` and carry.

    `state` = (step, carry, (tokens, recursion_depth, halt_logit), halted). With `noise` (a LatentNoise),
    the step starts from a carry that got this step's noise (on `noise_on`). Rows halting at this step record
    their answer, depth and halt logit; halted rows keep their carry and answer.
    """
    step, carry, pred, halted = state
    start = carry if noise is None else _perturbed(model, carry, noise, step, noise_on)
    new = run_cycles(model, params, x, start, model.num_refinement_blocks)
    logits, halt_logits = apply_method(model, params, "heads", to_native(model, new.y))
    prob = jax.nn.sigmoid(halt_logits)
    step = step + 1
    halting_now = ~halted & ((prob >= threshold) | (step >= max_recursion_depth))
    pred = (jnp.where(halting_now[:, None], jnp.argmax(logits, -1).astype(jnp.int32), pred[0]),
            jnp.where(halting_now, step, pred[1]), jnp.where(halting_now, halt_logits, pred[2]))
    keep = jnp.expand_dims(halted, (0, 2) if _batch_axis(model) else (1, 2))
    carry = Carry(jnp.where(keep, carry.y, new.y), jnp.where(keep, carry.z, new.z))
    return step, carry, pred, halted | halting_now


@functools.partial(jax.jit, static_argnums=(0, 11))
def _run(model, params, x, carry, pred, halted, step, threshold, max_recursion_depth, min_active, noise, noise_on):
    """Supervision steps until all rows halted, `max_recursion_depth` steps ran, or at most
    `min_active` rows are still active. Returns (step, carry, pred, halted)."""

    def cond(state):
        step, _, _, halted = state
        return (step < max_recursion_depth) & (jnp.sum(~halted) > min_active)

    def body(state):
        return predict_step(model, params, x, state, threshold, max_recursion_depth, noise, noise_on)

    return jax.lax.while_loop(cond, body, (step, carry, pred, halted))


def _empty_prediction(rows: int, seq_len: int):
    return (jnp.zeros((rows, seq_len), jnp.int32), jnp.zeros((rows,), jnp.int32), jnp.zeros((rows,), jnp.float32))


@functools.partial(jax.jit, static_argnums=(0, 6, 9))
def _predict_jit(model, params, tokens, puzzle_ids, threshold, max_recursion_depth, trajectories, noise_std, keys,
                 noise_on):
    """(tokens, recursion_depth, halt_logit) of every row from one while_loop over all supervision steps."""
    x, carry, noise = _start(model, params, tokens, puzzle_ids, trajectories, noise_std, keys)
    rows = trajectories * tokens.shape[0]
    pred0 = _empty_prediction(rows, tokens.shape[1])
    _, _, pred, _ = _run(model, params, x, carry, pred0, jnp.zeros((rows,), bool), jnp.int32(0), threshold,
                         max_recursion_depth, jnp.int32(0), noise, noise_on)
    return pred


@functools.partial(jax.jit, static_argnums=0)
def _compact(model, x, carry, noise, index):
    """Rows `index` of the per-row state (the active rows, padded with halted copies)."""
    axis = _batch_axis(model)
    take = lambda a: jnp.take(a, index, axis=axis)  # noqa: E731
    if noise is not None:
        noise = LatentNoise(noise.std, jnp.take(noise.row_keys, index, axis=0))
    return take(x), Carry(take(carry.y), take(carry.z)), noise


def _predict_compacting(model, params, tokens, puzzle_ids, threshold, max_recursion_depth, trajectories, noise_std,
                        keys, noise_on) -> tuple:
    batch, seq = trajectories * tokens.shape[0], tokens.shape[1]
    out = [np.zeros((batch, seq), np.int32), np.zeros(batch, np.int32), np.zeros(batch, np.float32)]
    rows = np.arange(batch)  # original row of each slot; -1 = padding
    x, carry, noise = _start(model, params, tokens, puzzle_ids, trajectories, noise_std, keys)
    halted = np.zeros(batch, bool)
    step = jnp.int32(0)
    while True:
        size = len(rows)
        final = size <= MIN_BUCKET
        step, carry, pred, halted_d = _run(model, params, x, carry, _empty_prediction(size, seq), jnp.asarray(halted),
                                           step, threshold, max_recursion_depth, jnp.int32(0 if final else size // 2),
                                           noise, noise_on)
        pred, halted_now = jax.device_get(pred), np.asarray(halted_d)
        done = halted_now & ~halted & (rows >= 0)  # halted during this segment
        for o, p in zip(out, pred):
            o[rows[done]] = p[done]
        active = np.nonzero(~halted_now)[0]
        if final or active.size == 0 or int(step) >= int(max_recursion_depth):
            break
        bucket = max(MIN_BUCKET, power_of_two_at_least(active.size))
        pad = bucket - active.size
        index = np.concatenate([active, np.full(pad, active[0])])
        x, carry, noise = _compact(model, x, carry, noise, jnp.asarray(index))
        rows = np.concatenate([rows[active], np.full(pad, -1)])
        halted = np.concatenate([np.zeros(active.size, bool), np.ones(pad, bool)])
    return tuple(jnp.asarray(o) for o in out)
