"""Test-time trajectories: option checks, per-sample noise keys, the noise of a supervision step, and the
choice of one trajectory per sample (by the halting head, by vote, among the settled ones or among those a
verifier accepts).

`predict(..., trajectories=K)` runs every sample as K rows of one batch (row `k * batch + b` is trajectory
k of sample b). Each row draws its own Gaussian noise at every supervision step from a key that depends
only on its sample's key, k and the step, so a sample's trajectories do not depend on the batch it sits
in, on compaction or on how many devices share the batch.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import TRMError

SELECT_MODES = ("halt", "vote", "settled", "verify")
NOISE_ON = ("z", "y", "both")  # the carry states the noise may be added to
# where the noise goes, and its scale when trajectories > 1 and none is given: the best of a sweep on
# held-out Sudoku (docs/test-time-compute.md)
DEFAULT_NOISE_ON = "y"
DEFAULT_NOISE_STD = 0.5


class Trajectories(NamedTuple):
    """Every trajectory's result, leading axes [trajectories, batch]."""

    tokens: jax.Array  # [K, batch, seq_len] predicted token ids at each trajectory's halting step
    recursion_depth: jax.Array  # [K, batch] supervision steps each trajectory ran
    halt_logit: jax.Array  # [K, batch] halt logit at each trajectory's halting step
    # [K, batch] bool: stopped by its rule (the answer settled, or the halting head) rather than by the depth
    # cap; None in results built by hand without it (then "settled" selection treats none as settled)
    settled: Optional[jax.Array] = None


class LatentNoise(NamedTuple):
    """What `predict_step` needs to perturb the carry: the noise scale and one key per row."""

    std: jax.Array  # float32 scalar
    row_keys: jax.Array  # [rows] PRNG keys


def check_options(trajectories, noise_std, select):
    """The noise scale to use (`noise_std`, or DEFAULT_NOISE_STD for several trajectories; None: one
    noiseless trajectory), after one TRMError for a bad trajectory count, noise scale (when concrete) or
    selection rule."""
    if isinstance(trajectories, bool) or not isinstance(trajectories, (int, np.integer)) or trajectories < 1:
        raise TRMError(f"trajectories must be an int >= 1 (a static count), got {trajectories!r}")
    if select not in SELECT_MODES:
        raise TRMError(f"select must be one of {SELECT_MODES} (pick the trajectory by the halting head, by vote, "
                       f"among the settled ones or among those the task's verifier accepts), got {select!r}")
    if noise_std is not None and not isinstance(noise_std, jax.core.Tracer):
        try:
            value = float(noise_std)
        except (TypeError, ValueError):
            raise TRMError(f"noise_std must be a number >= 0, got {noise_std!r}") from None
        if not value >= 0 or not np.isfinite(value):
            raise TRMError(f"noise_std must be a finite number >= 0 (the scale of the Gaussian noise added to the "
                           f"recursion's state), got {noise_std!r}")
    if noise_std is None and trajectories > 1:
        return DEFAULT_NOISE_STD
    return noise_std


def sample_keys(rng, batch: int) -> jax.Array:
    """One PRNG key per sample from `rng`: None (seed 0), an int seed, a key, or already `batch` keys
    (typed, or raw uint32 [batch, 2]). A single key gives sample b the key `fold_in(key, b)`."""
    if rng is None:
        rng = 0
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = jax.random.key(int(rng))
    elif not hasattr(rng, "dtype"):
        raise TRMError(f"rng must be an int seed or a JAX PRNG key (jax.random.key(seed)), got {type(rng).__name__}")
    elif not jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jnp.asarray(rng)
        if rng.dtype == jnp.uint32 and rng.ndim >= 1 and rng.shape[-1] == 2:  # raw keys (jax.random.PRNGKey)
            rng = jax.random.wrap_key_data(rng)
        elif rng.ndim == 0 and jnp.issubdtype(rng.dtype, jnp.integer):  # a (traced) integer seed
            rng = jax.random.key(rng)
        else:
            raise TRMError(f"rng must be an int seed, a PRNG key or one key per sample; got an array of dtype "
                           f"{rng.dtype} and shape {rng.shape}")
    if rng.shape == ():
        return jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(batch))
    if rng.shape != (batch,):
        raise TRMError(f"rng holds keys of shape {rng.shape}; pass one key, or one per sample ({batch},)")
    return rng


def indexed_keys(seed: int, index) -> jax.Array:
    """Raw uint32 [len(index), 2] keys `fold_in(key(seed), i)` for sample indices `index`: the keys `predict`
    derives from `rng=seed` for a batch that starts at sample 0, so evaluating or answering a list in
    chunks gives each sample the trajectories it would get in one batch."""
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(int(seed)), jnp.asarray(index, jnp.uint32))
    return np.asarray(jax.random.key_data(keys))


def row_keys(keys: jax.Array, trajectories: int) -> jax.Array:
    """[trajectories * batch] keys, row `k * batch + b` = fold_in(keys[b], k)."""
    batch = keys.shape[0]
    k = jnp.repeat(jnp.arange(trajectories), batch)
    return jax.vmap(jax.random.fold_in)(jnp.tile(keys, trajectories), k)


def step_noise(noise: LatentNoise, step, shape: tuple, dtype) -> jax.Array:
    """[rows, *shape] standard normal draws of supervision step `step` (0-based), scaled by noise.std."""
    draw = jax.vmap(lambda key: jax.random.normal(jax.random.fold_in(key, step), shape))(noise.row_keys)
    return (noise.std * draw).astype(dtype)


def tile_rows(a, trajectories: int):
    """Rows of `a` repeated as K consecutive copies of the batch (None stays None)."""
    if a is None or trajectories == 1:
        return a
    return jnp.tile(a, (trajectories,) + (1,) * (a.ndim - 1))


def as_trajectories(tokens, depth, halt_logit, settled, trajectories: int) -> Trajectories:
    """Row-major results [K * batch, ...] as Trajectories [K, batch, ...]."""
    split = lambda a: a.reshape((trajectories, a.shape[0] // trajectories) + a.shape[1:])  # noqa: E731
    return Trajectories(split(tokens), split(depth), split(halt_logit), split(settled))


def chosen_index(result: Trajectories, select: str, verified=None) -> jax.Array:
    """[batch] index of the chosen trajectory per sample.

    "halt": the highest final halt logit (the first on ties). "vote": a trajectory whose answer the most
    trajectories share, ties between answers broken by their trajectories' mean halt probability.
    "settled": the vote among the settled trajectories (`result.settled`), "verify": among those `verified`
    ([K, batch] bool, from `verify_trajectories`) marks; a sample with no such trajectory falls back to the
    vote among all of its trajectories."""
    if select == "halt":
        return jnp.argmax(result.halt_logit, axis=0)
    if select == "vote":
        return _vote(result, None)
    if select == "settled":
        mask = result.settled if result.settled is not None else jnp.zeros(result.halt_logit.shape, bool)
        return _vote(result, mask)
    if select == "verify":
        if verified is None:
            raise TRMError("select='verify' needs the trajectories' verdicts (verify_trajectories) or a verifier")
        return _vote(result, jnp.asarray(verified, bool))
    raise TRMError(f"select must be one of {SELECT_MODES}, got {select!r}")


def _vote(result: Trajectories, mask) -> jax.Array:
    """The vote of `chosen_index` among the trajectories `mask` [K, batch] marks (all of a sample's when it
    marks none of them, or when mask is None)."""
    tokens = result.tokens
    prob = jax.nn.sigmoid(result.halt_logit)
    if mask is None:
        mask = jnp.ones(prob.shape, bool)
    else:
        mask = mask | ~mask.any(axis=0, keepdims=True)
    # same[k, j, b]: trajectories k and j give sample b the same answer and j is a candidate (one [K, batch]
    # slice at a time)
    same = jax.lax.map(lambda answer: jnp.all(tokens == answer[None], axis=-1), tokens) & mask[None]
    count = same.sum(axis=1)
    mean_prob = jnp.where(same, prob[None], 0.0).sum(axis=1) / jnp.maximum(count, 1)
    score = 2.0 * count + mean_prob  # mean_prob <= 1: the count decides, then the mean
    return jnp.argmax(jnp.where(mask, score, -1.0), axis=0)


def verify_trajectories(verifier: Callable, inputs, tokens) -> np.ndarray:
    """[K, batch] bool: `verifier(inputs[b], tokens[k, b])` (numpy token rows; truthy = the answer passes) for
    every trajectory, on the host. `inputs` [batch, seq_len], `tokens` [K, batch, seq_len]."""
    if not callable(verifier):
        raise TRMError(f"verifier must be a function verify(input_tokens, answer_tokens) -> bool, got "
                       f"{type(verifier).__name__}")
    inputs, tokens = np.asarray(inputs), np.asarray(tokens)
    return np.array([[bool(verifier(inputs[b], tokens[k, b])) for b in range(tokens.shape[1])]
                     for k in range(tokens.shape[0])], dtype=bool).reshape(tokens.shape[:2])


def take_trajectory(result: Trajectories, index) -> Trajectories:
    """Trajectory index[b] of every sample: fields [batch, ...] (settled stays None when absent)."""
    pick = lambda a: jnp.take_along_axis(a, index.reshape((1, -1) + (1,) * (a.ndim - 2)), axis=0)[0]  # noqa: E731
    return Trajectories(*(None if a is None else pick(a) for a in result))
