"""predict: recursive inference with per-sample halting (one `while_loop`; eager calls compact the batch).

The loop's state is `(step, carry, prediction, halted)`; `predict_step` (one supervision step of every
still-active sample) is its body, shared by the single loop and the compacting one.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import TRMError
from trm_jax.models.recursion import Carry, apply_method, carry_to_native, embed_native, run_cycles, to_native

# A halt threshold above 1: no sample halts early, every one runs max_recursion_depth supervision steps
# (how the official code evaluates).
NO_EARLY_HALT = 2.0

MIN_BUCKET = 8  # smallest batch the compacting predict shrinks to


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
            compact: bool = True) -> Prediction:
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
    max_recursion_depth = model.max_recursion_depth if max_recursion_depth is None else max_recursion_depth
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.ndim != 2:
        raise TRMError(f"predict expects tokens of shape [batch, seq_len], got {tokens.shape}")
    model = model.sized_for(tokens.shape[1])
    ids = None if puzzle_ids is None else jnp.asarray(puzzle_ids, jnp.int32)
    threshold, max_recursion_depth = jnp.float32(threshold), jnp.int32(max_recursion_depth)
    traced = any(isinstance(a, jax.core.Tracer)
                 for a in jax.tree.leaves((params, tokens, ids, threshold, max_recursion_depth)))
    if traced or not compact or tokens.shape[0] < 2 * MIN_BUCKET:
        return Prediction(*_predict_jit(model, params, tokens, ids, threshold, max_recursion_depth))
    return _predict_compacting(model, params, tokens, ids, threshold, max_recursion_depth)


def _batch_axis(model) -> int:
    return 1 if model.seq_first else 0


@functools.partial(jax.jit, static_argnums=0)
def _start(model, params, tokens, puzzle_ids):
    """(x, initial carry) in the network's native layout."""
    x = embed_native(model, params, tokens, puzzle_ids)
    return x, carry_to_native(model, apply_method(model, params, "initial_carry", tokens.shape[0]))


def predict_step(model, params, x, state, threshold, max_recursion_depth):
    """One supervision step of the predict loop on native-layout `x` and carry.

    `state` = (step, carry, (tokens, recursion_depth, halt_prob), halted). Samples halting at this
    step record their answer, depth and halting probability; halted samples keep their carry and answer.
    """
    step, carry, pred, halted = state
    new = run_cycles(model, params, x, carry, model.num_refinement_blocks)
    logits, halt_logits = apply_method(model, params, "heads", to_native(model, new.y))
    prob = jax.nn.sigmoid(halt_logits)
    step = step + 1
    halting_now = ~halted & ((prob >= threshold) | (step >= max_recursion_depth))
    pred = (jnp.where(halting_now[:, None], jnp.argmax(logits, -1).astype(jnp.int32), pred[0]),
            jnp.where(halting_now, step, pred[1]), jnp.where(halting_now, prob, pred[2]))
    keep = jnp.expand_dims(halted, (0, 2) if _batch_axis(model) else (1, 2))
    carry = Carry(jnp.where(keep, carry.y, new.y), jnp.where(keep, carry.z, new.z))
    return step, carry, pred, halted | halting_now


@functools.partial(jax.jit, static_argnums=0)
def _run(model, params, x, carry, pred, halted, step, threshold, max_recursion_depth, min_active):
    """Supervision steps until all samples halted, `max_recursion_depth` steps ran, or at most
    `min_active` samples are still active. Returns (step, carry, pred, halted)."""

    def cond(state):
        step, _, _, halted = state
        return (step < max_recursion_depth) & (jnp.sum(~halted) > min_active)

    def body(state):
        return predict_step(model, params, x, state, threshold, max_recursion_depth)

    return jax.lax.while_loop(cond, body, (step, carry, pred, halted))


def _empty_prediction(batch: int, seq_len: int):
    return (jnp.zeros((batch, seq_len), jnp.int32), jnp.zeros((batch,), jnp.int32), jnp.zeros((batch,), jnp.float32))


@functools.partial(jax.jit, static_argnums=0)
def _predict_jit(model, params, tokens, puzzle_ids, threshold, max_recursion_depth):
    """(tokens, recursion_depth, halt_prob) from one while_loop over all supervision steps."""
    batch = tokens.shape[0]
    x, carry = _start(model, params, tokens, puzzle_ids)
    pred0 = _empty_prediction(batch, tokens.shape[1])
    _, _, pred, _ = _run(model, params, x, carry, pred0, jnp.zeros((batch,), bool), jnp.int32(0), threshold,
                         max_recursion_depth, jnp.int32(0))
    return pred


@functools.partial(jax.jit, static_argnums=0)
def _compact(model, x, carry, index):
    """Rows `index` of the per-sample state (the active samples, padded with halted copies)."""
    axis = _batch_axis(model)
    take = lambda a: jnp.take(a, index, axis=axis)  # noqa: E731
    return take(x), Carry(take(carry.y), take(carry.z))


def _predict_compacting(model, params, tokens, puzzle_ids, threshold, max_recursion_depth) -> Prediction:
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
                                           step, threshold, max_recursion_depth, jnp.int32(0 if final else size // 2))
        pred, halted_now = jax.device_get(pred), np.asarray(halted_d)
        done = halted_now & ~halted & (rows >= 0)  # halted during this segment
        for o, p in zip(out, pred):
            o[rows[done]] = p[done]
        active = np.nonzero(~halted_now)[0]
        if final or active.size == 0 or int(step) >= int(max_recursion_depth):
            break
        bucket = max(MIN_BUCKET, 1 << (int(active.size) - 1).bit_length())
        pad = bucket - active.size
        index = np.concatenate([active, np.full(pad, active[0])])
        x, carry = _compact(model, x, carry, jnp.asarray(index))
        rows = np.concatenate([rows[active], np.full(pad, -1)])
        halted = np.concatenate([np.zeros(active.size, bool), np.ones(pad, bool)])
    return Prediction(*(jnp.asarray(o) for o in out))
