"""predict: recursive inference with per-sample halting (one `while_loop`; eager calls compact the batch),
optionally as K noisy trajectories per sample, one of which is chosen.

A sample stops by its rule: the learned halting head (`halting="head"`, sigmoid(halt_logit) >= threshold)
or settling (`halting="settled"`, its decoded answer unchanged for `settle_steps` consecutive supervision
steps), or at `max_recursion_depth`. The loop's state is the step and one `Rows` (carry, latest answer,
depth, halt logit, unchanged-steps counter, halted, settled) of fixed shape, so memory does not depend on
the depth cap; `predict_step` (one supervision step of every still-active row) is its body, shared by the
single loop, the compacting one and `predict_steps` (trace.py). Trajectories are rows too (trajectories.py:
keys, noise, choice).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import TRMError
from trm_jax.models.recursion import Carry, apply_method, carry_to_native, embed_native, run_cycles, to_native
from trm_jax.models.trajectories import (DEFAULT_NOISE_ON, NOISE_ON, LatentNoise, Trajectories, as_trajectories,
                                         check_options, chosen_index, row_keys, sample_keys, step_noise,
                                         take_trajectory, tile_rows, verify_trajectories)

# A halt threshold above 1: no sample halts early, every one runs max_recursion_depth supervision steps
# (how the official code evaluates).
NO_EARLY_HALT = 2.0

HALTING = ("head", "settled")  # the stop rules: the learned halting head, or an answer that stopped changing
DEFAULT_HALTING = "head"
DEFAULT_SETTLE_STEPS = 2  # a model (or config) without `settle_steps` uses this

MIN_BUCKET = 8  # smallest batch the compacting predict shrinks to


def power_of_two_at_least(n: int) -> int:
    """The smallest power of two >= n: batch sizes padded to it reuse a few compiled programs."""
    return 1 << max(0, (int(n) - 1).bit_length())


class _PredictionFields(NamedTuple):
    tokens: jax.Array  # [batch, seq_len] predicted token ids at each sample's halting step
    recursion_depth: jax.Array  # [batch] supervision steps run before halting, >= 1


class Prediction(_PredictionFields):
    """`(tokens, recursion_depth)` as the PyPI package's `predict` returns `(preds, exited_steps)`, so
    `preds, depth = model.predict(...)` works. Attributes riding along: `halt_prob` [batch]
    (sigmoid(halt_logit) at the halting step), `settled` [batch] bool (the answer's trajectory stopped by its
    rule, settling or the halting head, rather than at the depth cap) and `verified` [batch] bool (the
    verifier accepts the answer; None without a verifier)."""

    def __new__(cls, tokens, recursion_depth, halt_prob=None, settled=None, verified=None):
        self = super().__new__(cls, tokens, recursion_depth)
        self.halt_prob = halt_prob
        self.settled = settled
        self.verified = verified
        return self

    @property
    def steps(self) -> jax.Array:
        """The PyPI package's name for `recursion_depth`."""
        return self.recursion_depth


# a pytree of all its arrays (jax.device_get, jax.tree.map keep the attributes), registered ahead of
# JAX's namedtuple handling, which would see only the two tuple fields
jax.tree_util.register_pytree_node(
    Prediction, lambda p: ((p.tokens, p.recursion_depth, p.halt_prob, p.settled, p.verified), None),
    lambda _, children: Prediction(*children))


def is_traced(*values) -> bool:
    """Whether any leaf of `values` is a JAX tracer (the caller runs under jit/vmap/grad)."""
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(values))


def check_verifier(select: str, verifier) -> None:
    """One TRMError when select='verify' has no verifier to run."""
    if select == "verify" and verifier is None:
        raise TRMError("select='verify' needs verifier=fn(input_tokens, answer_tokens) -> bool (the task's "
                       "verifier); use select='vote' or 'settled' for a task without one")


def resolve_inputs(model, tokens, puzzle_ids, halt_threshold, max_recursion_depth, halting, settle_steps, noise_std,
                   rng, noise_on: str) -> tuple:
    """predict's options checked and made device values, the model's defaults filled in: `(model sized for
    the tokens, tokens, puzzle ids, StopRule, halting, noise_std, per-sample noise keys)` (shared by predict
    and predict_steps, so both stop by the same rule)."""
    if noise_on not in NOISE_ON:
        raise TRMError(f"noise_on must be one of {NOISE_ON} (the state the noise is added to), got {noise_on!r}")
    halting, settle_steps = check_halting(model, halting, settle_steps)
    threshold = model.halt_threshold if halt_threshold is None else halt_threshold
    max_recursion_depth = model.max_recursion_depth if max_recursion_depth is None else max_recursion_depth
    check_depth(max_recursion_depth)
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.ndim != 2:
        raise TRMError(f"predict expects tokens of shape [batch, seq_len], got {tokens.shape}")
    model = model.sized_for(tokens.shape[1])
    ids = None if puzzle_ids is None else jnp.asarray(puzzle_ids, jnp.int32)
    rule = StopRule(jnp.float32(threshold), jnp.int32(max_recursion_depth), jnp.int32(settle_steps))
    keys = None
    if noise_std is not None:
        noise_std, keys = jnp.float32(noise_std), sample_keys(rng, tokens.shape[0])
    return model, tokens, ids, rule, halting, noise_std, keys


def check_halting(model, halting, settle_steps) -> tuple:
    """`(halting, settle_steps)` with the model's defaults filled in (its `halting` / `settle_steps` when it
    has them, else DEFAULT_HALTING / DEFAULT_SETTLE_STEPS), after one TRMError for a bad value."""
    halting = getattr(model, "halting", DEFAULT_HALTING) if halting is None else halting
    settle_steps = getattr(model, "settle_steps", DEFAULT_SETTLE_STEPS) if settle_steps is None else settle_steps
    if halting not in HALTING:
        raise TRMError(f"halting must be one of {HALTING} (stop a sample when the halting head says so, or when "
                       f"its answer has not changed for settle_steps supervision steps), got {halting!r}")
    if not isinstance(settle_steps, jax.core.Tracer):
        if isinstance(settle_steps, bool) or not isinstance(settle_steps, (int, np.integer)) or settle_steps < 1:
            raise TRMError(f"settle_steps must be an int >= 1 (consecutive supervision steps a sample's answer "
                           f"stays unchanged before it stops), got {settle_steps!r}")
    return halting, settle_steps


def check_depth(max_recursion_depth) -> None:
    if not isinstance(max_recursion_depth, jax.core.Tracer) and int(max_recursion_depth) < 1:
        raise TRMError(f"max_recursion_depth must be >= 1 (supervision steps at most), got {max_recursion_depth}")


def predict(model, params, tokens, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
            compact: bool = True, trajectories: int = 1, noise_std=None, select: str = "halt",
            rng=None, halting=None, settle_steps=None, verifier: Optional[Callable] = None) -> Prediction:
    """Recursive inference with per-sample halting.

    A sample stops by its rule or at `max_recursion_depth` steps; its answer is frozen from then on, and
    inference ends when every sample has stopped. Threshold, `settle_steps` and depth may be traced
    values: changing them does not recompile, and a depth above the one the model trained with simply
    runs more steps; the loop's memory does not grow with the depth.

    With `trajectories=K` each sample runs as K trajectories in the same batch, Gaussian noise of scale
    `noise_std` added to the answer state y before every supervision step (`predict_trajectories` can
    put it on the latent z); each halts on its own, and `select` picks one answer per sample. K = 1
    without `noise_std` is the plain computation (no noise, no keys).

    Called eagerly (not under jit) with `compact`, the loop leaves its `lax.while_loop` whenever half
    of the still-active rows have halted, and the host moves the active ones into a batch of the
    next power of two below (one sync per halving, one compilation per bucket size, cached), so halted
    rows stop costing compute. Each row's computation does not depend on the others, so the result
    equals the single-loop one; under jit it is that single `lax.while_loop`.

    Args:
        model: A `TinyRecursiveModel`.
        params: Its parameters.
        tokens: Input token ids [batch, seq_len].
        puzzle_ids: Puzzle identifiers [batch] (official variant with a puzzle-embedding table).
        halt_threshold: With `halting="head"`, a sample stops when sigmoid(halt_logit) >= this; None = the
            model's. Above 1 it never halts early (every sample runs `max_recursion_depth` steps: the
            official repo's evaluation).
        max_recursion_depth: Cap on supervision steps; None = the model's. It may exceed the depth the
            model trained with.
        compact: Move the still-active rows into smaller batches as samples halt (eager calls only).
        trajectories: K, noisy trajectories per sample (static).
        noise_std: Scale of the noise; None = `DEFAULT_NOISE_STD` when K > 1, no noise when K = 1.
        select: How a sample's answer is picked among its trajectories (static): "halt" (highest final
            halt logit), "vote" (the answer most trajectories give, ties by their mean halt probability;
            the first such trajectory's depth and halt probability are reported), "settled" (the vote
            among the settled trajectories) or "verify" (the vote among those `verifier` accepts); a
            sample with none of those falls back to the vote among all.
        rng: Keys the noise: an int seed, a PRNG key, or one key per sample; None = seed 0. The same key
            gives the same answers.
        halting: The stopping rule (static): "head" (the halting head, by `halt_threshold`) or "settled"
            (the decoded argmax answer unchanged for `settle_steps` consecutive supervision steps: after
            step t a counter grows by one if the answer equals step t-1's and is reset to 0 otherwise, so
            a sample stops at step settle_steps + 1 at the earliest); None = the model's `halting`, else
            "head".
        settle_steps: For `halting="settled"`; None = the model's, else 2.
        verifier: `verifier(input_tokens, answer_tokens) -> bool` on numpy rows (a task's rule check),
            for `select="verify"`; it runs on the host after the device loop, so not under jit.

    Returns:
        A `Prediction`: `tokens` [batch, seq_len] and `recursion_depth` [batch] (it unpacks as
        `preds, depth`, like the PyPI package's `(preds, exited_steps)`), plus `halt_prob` [batch]
        (sigmoid(halt_logit) at the halting step), `settled` [batch] (whether the rule stopped the
        answer's trajectory, at the cap too when it fires there, rather than the cap) and `verified`
        [batch] (whether `verifier` accepts the answer; None without one).

    Raises:
        TRMError: A bad `trajectories`, `noise_std`, `select`, `halting` or `settle_steps`, or
            `select="verify"` without a `verifier`.
    """
    noise_std = check_options(trajectories, noise_std, select)
    check_verifier(select, verifier)
    result = predict_trajectories(model, params, tokens, puzzle_ids=puzzle_ids, halt_threshold=halt_threshold,
                                  max_recursion_depth=max_recursion_depth, compact=compact,
                                  trajectories=trajectories, noise_std=noise_std, rng=rng, halting=halting,
                                  settle_steps=settle_steps)
    verified = verdicts(result, tokens, verifier)
    if trajectories == 1:
        chosen = Trajectories(*(a[0] for a in result))
        verified = None if verified is None else jnp.asarray(verified[0])
    else:
        chosen, verified = _choose(result, select, verified)
    return Prediction(chosen.tokens, chosen.recursion_depth, jax.nn.sigmoid(chosen.halt_logit), chosen.settled,
                      verified)


def predict_trajectories(model, params, tokens, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
                         compact: bool = True, trajectories: int = 1, noise_std=None, rng=None,
                         noise_on: str = DEFAULT_NOISE_ON, halting=None, settle_steps=None) -> Trajectories:
    """Every trajectory's answer, depth, final halt logit and settled flag ([K, batch] leading axes), before
    the choice `predict` makes: for callers that vote over trajectories themselves (ARC's augmentation vote)
    or compare choices. `noise_std=None` adds no noise (K identical trajectories); `noise_on` is the carry
    state the noise is added to: "y" (the answer state), "z" (the latent) or "both"; the rest: see `predict`."""
    check_options(trajectories, noise_std, "halt")
    model, tokens, ids, rule, halting, noise_std, keys = resolve_inputs(
        model, tokens, puzzle_ids, halt_threshold, max_recursion_depth, halting, settle_steps, noise_std, rng,
        noise_on)
    args = (model, params, tokens, ids, rule, halting, trajectories, noise_std, keys, noise_on)
    traced = is_traced(params, tokens, ids, rule, noise_std, keys)
    if traced or not compact or trajectories * tokens.shape[0] < 2 * MIN_BUCKET:
        rows = _predict_jit(*args)
    else:
        rows = _predict_compacting(*args)
    return as_trajectories(*rows, trajectories)


def verdicts(result: Trajectories, inputs, verifier: Optional[Callable]) -> Optional[np.ndarray]:
    """[K, batch] bool: whether `verifier` accepts each trajectory's answer (None without a verifier). On the
    host, after the device loop."""
    if verifier is None:
        return None
    if is_traced(result.tokens):
        raise TRMError("a verifier runs on the host after the recursion: call predict outside jax.jit, or "
                       "select among predict_trajectories' answers yourself")
    return verify_trajectories(verifier, jax.device_get(inputs), jax.device_get(result.tokens))


@functools.partial(jax.jit, static_argnames="select")
def _choose(result: Trajectories, select: str, verified=None) -> tuple:
    """(Trajectories [batch, ...] of each sample's chosen trajectory, its verdict [batch] or None)."""
    index = chosen_index(result, select, verified)
    picked = None if verified is None else jnp.take_along_axis(verified, index[None], axis=0)[0]
    return take_trajectory(result, index), picked


def _batch_axis(model) -> int:
    return 1 if model.seq_first else 0


class StopRule(NamedTuple):
    """The traced knobs of the stop rule (the rule itself, `halting`, is static)."""

    threshold: jax.Array  # float32: the halting head stops a row at sigmoid(halt_logit) >= threshold
    max_recursion_depth: jax.Array  # int32: the depth cap
    settle_steps: jax.Array  # int32: unchanged steps after which "settled" halting stops a row


class Rows(NamedTuple):
    """The per-row loop state. Answer, depth and halt logit are those of the row's latest step, frozen once
    it halted; so at the end they are the answer at its halting step."""

    carry: Carry  # in the network's native layout
    tokens: jax.Array  # [rows, seq_len] int32 argmax answer (-1 before the first step)
    recursion_depth: jax.Array  # [rows] int32
    halt_logit: jax.Array  # [rows] float32
    unchanged: jax.Array  # [rows] int32 consecutive steps the answer did not change
    halted: jax.Array  # [rows] bool
    settled: jax.Array  # [rows] bool: stopped by its rule, not by the cap

    def outputs(self) -> tuple:
        return self.tokens, self.recursion_depth, self.halt_logit, self.settled


def initial_rows(carry: Carry, rows: int, seq_len: int) -> Rows:
    return Rows(carry, jnp.full((rows, seq_len), -1, jnp.int32), jnp.zeros((rows,), jnp.int32),
                jnp.zeros((rows,), jnp.float32), jnp.zeros((rows,), jnp.int32), jnp.zeros((rows,), bool),
                jnp.zeros((rows,), bool))


@functools.partial(jax.jit, static_argnums=(0, 4))
def start_rows(model, params, tokens, puzzle_ids, trajectories, noise_std, keys):
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


def predict_step(model, params, x, step, rows: Rows, rule: StopRule, halting: str, noise=None,
                 noise_on: str = DEFAULT_NOISE_ON) -> tuple:
    """One supervision step of the predict loop on native-layout `x` and carry: `(step + 1, rows)`.

    With `noise` (a LatentNoise), the step starts from a carry that got this step's noise (on `noise_on`).
    Active rows take the step's answer, depth and halt logit and count how long their answer has not
    changed; those whose rule (`halting`) fires or that reach the depth cap halt. Halted rows keep their
    carry and everything else.
    """
    carry = rows.carry
    start = carry if noise is None else _perturbed(model, carry, noise, step, noise_on)
    new = run_cycles(model, params, x, start, model.num_refinement_blocks)
    logits, halt_logits = apply_method(model, params, "heads", to_native(model, new.y))
    answer = jnp.argmax(logits, -1).astype(jnp.int32)
    step = step + 1
    active = ~rows.halted
    same = jnp.all(answer == rows.tokens, axis=-1)  # never at the first step: tokens start at -1
    unchanged = jnp.where(same, rows.unchanged + 1, 0)
    if halting == "head":
        fires = jax.nn.sigmoid(halt_logits) >= rule.threshold
    else:
        fires = unchanged >= rule.settle_steps
    stop = active & (fires | (step >= rule.max_recursion_depth))
    keep = jnp.expand_dims(rows.halted, (0, 2) if _batch_axis(model) else (1, 2))
    return step, Rows(Carry(jnp.where(keep, carry.y, new.y), jnp.where(keep, carry.z, new.z)),
                      jnp.where(active[:, None], answer, rows.tokens), jnp.where(active, step, rows.recursion_depth),
                      jnp.where(active, halt_logits, rows.halt_logit), jnp.where(active, unchanged, rows.unchanged),
                      rows.halted | stop, rows.settled | (stop & fires))


@functools.partial(jax.jit, static_argnums=(0, 7, 9))
def _run(model, params, x, rows: Rows, step, rule: StopRule, min_active, halting, noise, noise_on):
    """Supervision steps until all rows halted, `max_recursion_depth` steps ran, or at most
    `min_active` rows are still active. Returns (step, rows)."""

    def cond(state):
        step, rows = state
        return (step < rule.max_recursion_depth) & (jnp.sum(~rows.halted) > min_active)

    def body(state):
        return predict_step(model, params, x, *state, rule, halting, noise, noise_on)

    return jax.lax.while_loop(cond, body, (step, rows))


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 9))
def _predict_jit(model, params, tokens, puzzle_ids, rule, halting, trajectories, noise_std, keys, noise_on):
    """(tokens, recursion_depth, halt_logit, settled) of every row from one while_loop over all supervision
    steps."""
    x, carry, noise = start_rows(model, params, tokens, puzzle_ids, trajectories, noise_std, keys)
    rows = initial_rows(carry, trajectories * tokens.shape[0], tokens.shape[1])
    _, rows = _run(model, params, x, rows, jnp.int32(0), rule, jnp.int32(0), halting, noise, noise_on)
    return rows.outputs()


@functools.partial(jax.jit, static_argnums=0)
def _compact(model, x, rows: Rows, noise, index, padding):
    """Rows `index` of the per-row state (the active rows, then copies marked halted where `padding`)."""
    axis = _batch_axis(model)
    take = lambda a, ax=0: jnp.take(a, index, axis=ax)  # noqa: E731
    if noise is not None:
        noise = LatentNoise(noise.std, take(noise.row_keys))
    carry = Carry(take(rows.carry.y, axis), take(rows.carry.z, axis))
    rows = Rows(carry, *(take(a) for a in rows[1:]))
    return take(x, axis), rows._replace(halted=rows.halted | padding), noise


def _predict_compacting(model, params, tokens, puzzle_ids, rule, halting, trajectories, noise_std, keys,
                        noise_on) -> tuple:
    batch, seq = trajectories * tokens.shape[0], tokens.shape[1]
    out = [np.zeros((batch, seq), np.int32), np.zeros(batch, np.int32), np.zeros(batch, np.float32),
           np.zeros(batch, bool)]
    slots = np.arange(batch)  # original row of each slot; -1 = padding
    x, carry, noise = start_rows(model, params, tokens, puzzle_ids, trajectories, noise_std, keys)
    rows = initial_rows(carry, batch, seq)
    step = jnp.int32(0)
    cap = int(rule.max_recursion_depth)
    while True:
        size = len(slots)
        final = size <= MIN_BUCKET
        step, rows = _run(model, params, x, rows, step, rule, jnp.int32(0 if final else size // 2), halting, noise,
                          noise_on)
        halted = np.asarray(rows.halted)
        done = halted & (slots >= 0)  # halted rows' results are frozen: writing them again changes nothing
        for o, a in zip(out, jax.device_get(rows.outputs())):
            o[slots[done]] = a[done]
        active = np.nonzero(~halted)[0]
        if final or active.size == 0 or int(step) >= cap:
            break
        bucket = max(MIN_BUCKET, power_of_two_at_least(active.size))
        index = np.concatenate([active, np.full(bucket - active.size, active[0])])
        slots = np.concatenate([slots[active], np.full(bucket - active.size, -1)])
        x, rows, noise = _compact(model, x, rows, noise, jnp.asarray(index), jnp.asarray(slots < 0))
    return tuple(jnp.asarray(o) for o in out)
