"""The recursion: pure functions of `(model, params, inputs)` that run a TinyRecursiveModel's supervision step.

`model` is a TinyRecursiveModel (module.py). Its methods are called by name, `model.apply(...,
method="net")`, once per network use inside `lax.scan` / `lax.fori_loop`, so loops stay outside
Linen's scope machinery and compile time does not grow with n*T. (By name because module.py imports
this module for its convenience methods.)

Naming follows the paper: input embedding `x`, answer state `y`, latent `z`; `n` latent refinements
per cycle, `T` cycles per supervision step.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import ConfigError, TRMError


class Carry(NamedTuple):
    y: jax.Array  # answer state  [batch, prefix + seq_len, dim]
    z: jax.Array  # latent state  [batch, prefix + seq_len, dim]


class StepOutput(NamedTuple):
    carry: Carry
    logits: jax.Array  # [batch, seq_len, num_tokens]
    halt_logits: jax.Array  # [batch]


# ------------------------------------------------------------------------------------------ parameters

PROBE_LENGTHS = (2, 3)  # sequence lengths at which a model without seq_len is initialised (shapes only)


def init_params(model, rng, tokens=None) -> dict:
    """Random parameters as a plain nested dict of arrays.

    Args:
        model: A `TinyRecursiveModel`.
        rng: A PRNG key (`jax.random.key(0)`).
        tokens: A sample input [batch, seq_len], as Flax's `init` takes; its length is used when the model
            sets none (otherwise the model's `token_len` is). Without either, a short length is used once
            the parameter shapes are seen not to depend on it (a network without a `seq_len`, as the PyPI
            package allows).

    Returns:
        The parameter pytree (`{"params": ...}` of Flax's `init`, without that outer key).

    Raises:
        TRMError: The model has no length and its parameters' shapes depend on it, or `tokens` has another
            length than the model's.
    """
    if tokens is not None:
        model = model.sized_for(np.shape(tokens)[-1])
    elif not model.has_seq_len:
        model = _length_free(model)
    sample = jnp.zeros((1, model.token_len), jnp.int32)
    return jax.jit(model.init)(rng, sample)["params"]


def _length_free(model):
    """`model` at the first probe length, after checking its parameter shapes agree at both probe lengths."""
    shapes = []
    for length in PROBE_LENGTHS:
        probe = model.clone(seq_len=length)
        try:
            tree = jax.eval_shape(probe.init, jax.random.key(0), jnp.zeros((1, length), jnp.int32))["params"]
        except (ValueError, TypeError) as e:
            raise TRMError(f"the model has no seq_len and its network fails at {length} positions ({e}); pass "
                           "TinyRecursiveModel(..., seq_len=L) (tokens per sample)") from None
        shapes.append(jax.tree.map(lambda a: a.shape, tree))
    if shapes[0] != shapes[1]:
        raise TRMError("the model has no seq_len, and its parameters' shapes depend on the sequence length; pass "
                       "TinyRecursiveModel(..., seq_len=L) (tokens per sample), or init_params(key, tokens)")
    return model.clone(seq_len=PROBE_LENGTHS[0])


def apply_method(model, params, method: str, *args, rng=None, **kwargs):
    """`model.<method>(*args, **kwargs)` with `params` (and dropout keyed by `rng`, if given)."""
    rngs = {"dropout": rng} if rng is not None else None
    return model.apply({"params": params}, *args, method=method, rngs=rngs, **kwargs)


@functools.partial(jax.jit, static_argnums=(0, 2))
def initial_carry(model, params, batch_size: int) -> Carry:
    """The carry every sample starts from, before its first supervision step.

    Args:
        model: A `TinyRecursiveModel`.
        params: Its parameters (the learned initial states of the PyPI variant live there).
        batch_size: Samples in the batch.

    Returns:
        `Carry(y, z)`: the answer and latent states, each [batch_size, prefix + seq_len, dim].
    """
    return apply_method(model, params, "initial_carry", batch_size)


# ---------------------------------------------------------------------------------- network layout

def to_native(model, a):
    """[batch, seq, dim] <-> the network's native layout (an involution: the same call converts back)."""
    return a.transpose(1, 0, 2) if model.seq_first else a


def carry_to_native(model, carry: Carry) -> Carry:
    return Carry(*(to_native(model, a) for a in carry))


def embed_native(model, params, tokens, puzzle_ids, puzzle_delta=None):
    """x in the network's native layout."""
    return to_native(model, apply_method(model, params, "embed", tokens, puzzle_ids, puzzle_delta))


# ------------------------------------------------------------------------------------------ cycles

def remat_policy(model):
    """`(remat, policy)` for the network applications of the gradient cycle (`model.remat`).

    A network may declare `remat_saveable_names` (the mixer saves only its residual stream and
    channel-mixing pre-activations, recomputing the token-mixing hidden layer), which "auto" uses;
    otherwise "auto" saves the matmul outputs ("dots"). docs/performance.md compares the modes.
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
        fn = lambda h, i: apply_method(model, params, "net", h, native=True)  # noqa: E731
    else:
        fn = lambda h, i: apply_method(model, params, "net", h, deterministic=False,  # noqa: E731
                                       native=True, rng=jax.random.fold_in(rng, i))
    if remat:
        use, policy = remat_policy(model)
        if use:
            fn = jax.checkpoint(fn, policy=policy, prevent_cse=False)
    return fn


def latent_recursion(model, params, x, carry: Carry, rng=None, cycle=0) -> Carry:
    """One cycle: z <- net(x + y + z) n times, then y <- net(y + z). Arrays are [batch, seq, dim]."""
    native = latent_recursion_native(model, params, to_native(model, x), carry_to_native(model, carry), rng, cycle)
    return carry_to_native(model, native)


def latent_recursion_native(model, params, x, carry: Carry, rng=None, cycle=0, remat=False) -> Carry:
    """latent_recursion on arrays in the network's native layout."""
    net = _network_fn(model, params, rng, remat)
    z = _refine_latent(model, net, x, carry, cycle)
    y = net(carry.y + z, _answer_update_index(model, cycle))
    return Carry(y, z)


def _refine_latent(model, net, x, carry: Carry, cycle):
    """The cycle's n latent updates z <- net(x + y + z): the new z."""
    n = model.num_latent_refinements
    y, z = carry

    def refine_latent(z, i):
        return net(x + y + z, cycle * (n + 1) + i), None

    z, _ = jax.lax.scan(refine_latent, z, jnp.arange(n), unroll=model.scan_unroll)
    return z


def _answer_update_index(model, cycle):
    """The network application index (dropout key) of a cycle's answer update y <- net(y + z)."""
    return cycle * (model.num_latent_refinements + 1) + model.num_latent_refinements


def run_cycles(model, params, x, carry: Carry, num_cycles, rng=None) -> Carry:
    """`num_cycles` cycles (a `fori_loop`) on native-layout arrays."""
    return jax.lax.fori_loop(0, num_cycles, lambda c, cy: latent_recursion_native(model, params, x, cy, rng, c),
                             carry)


def _no_grad_cycles(model, params, x, carry, num_cycles, rng=None):
    """`num_cycles` cycles on stop-gradient inputs: differentiation sees constants, so no residuals are kept."""
    params, x, carry = jax.lax.stop_gradient((params, x, carry))
    return run_cycles(model, params, x, carry, num_cycles, rng)


@functools.partial(jax.jit, static_argnums=0)
def supervision_step(model, params, tokens, carry: Carry, rng=None, puzzle_ids=None, puzzle_delta=None) -> StepOutput:
    """One deep-supervision step: T-1 cycles without gradient, one with, then the heads.

    The incoming carry and the outgoing carry are both cut from the gradient. Jitted (the model is static),
    so eager callers get compiled code too; inside another jit/pmap it simply inlines.

    Args:
        model: A `TinyRecursiveModel`.
        params: Its parameters.
        tokens: Input token ids [batch, seq_len].
        carry: The carry from `initial_carry` or from the previous step's output.
        rng: A PRNG key for dropout; None = no dropout.
        puzzle_ids: Puzzle identifiers [batch] selecting puzzle-embedding rows (official variant with a
            table).
        puzzle_delta: Added to the gathered puzzle-embedding rows [batch, ndim]; the train step
            differentiates it (see `TinyRecursiveModel.embed`).

    Returns:
        `StepOutput(carry, logits, halt_logits)`: the new carry (cut from the gradient), logits
        [batch, seq_len, num_tokens] and halting logits [batch].
    """
    T = model.num_refinement_blocks
    x = embed_native(model, params, tokens, puzzle_ids, puzzle_delta)
    carry = carry_to_native(model, carry)
    carry = _no_grad_cycles(model, params, x, carry, T - 1, rng)
    carry = latent_recursion_native(model, params, x, carry, rng, T - 1, remat=True)
    carry = carry_to_native(model, carry)
    logits, halt_logits = apply_method(model, params, "heads", carry.y)
    return StepOutput(jax.lax.stop_gradient(carry), logits, halt_logits)


# ------------------------------------------------------------------------------------ final-step supervision

def final_step(model, params, tokens, rng=None, puzzle_ids=None, puzzle_delta=None, transition=False) -> StepOutput:
    """Final-step supervision's forward: T cycles from the initial carry, the gradient through the last only.

    After the Recursive Stem Model (arXiv 2603.15641; navidivan/rsm, models/recursive_reasoning/rsm.py,
    `RSM.forward`): every batch starts from the initial state; cycles 0..T-3 are detached warm-up (no
    gradient, no residuals); cycle T-2 is the "transition": its n latent updates run without gradient, and
    with `transition` its answer update y <- net(y + z) is differentiated too, from detached y and z (RSM's
    `train_outer` without `train_inner`; RSM draws it per batch, `include_prev_H`, with probability
    1 - `prob_detach_prev_H`); cycle T-1 is differentiated in full, and the loss (cross-entropy only; RSM has
    no halting loss) is taken on its logits. `transition` is a Python bool (one program each) or a traced
    bool (one program, a `lax.cond` that differentiates the transition only when it is true). The forward
    values equal `supervision_step` from the initial carry; the halting logit is returned but unsupervised.
    The outgoing carry is cut from the gradient.
    """
    if isinstance(transition, (bool, np.bool_)):
        return _final_step_static(model, params, tokens, rng, puzzle_ids, puzzle_delta, bool(transition))
    return _final_step(model, params, tokens, rng, puzzle_ids, puzzle_delta, transition)


def _final_step(model, params, tokens, rng, puzzle_ids, puzzle_delta, transition) -> StepOutput:
    T = model.num_refinement_blocks
    x = embed_native(model, params, tokens, puzzle_ids, puzzle_delta)
    carry = carry_to_native(model, apply_method(model, params, "initial_carry", tokens.shape[0]))
    carry = _no_grad_cycles(model, params, x, carry, T - 2, rng)
    carry = _transition_cycle(model, params, x, carry, rng, T - 2, transition)
    carry = latent_recursion_native(model, params, x, carry, rng, T - 1, remat=True)
    carry = carry_to_native(model, carry)
    logits, halt_logits = apply_method(model, params, "heads", carry.y)
    return StepOutput(jax.lax.stop_gradient(carry), logits, halt_logits)


_final_step_static = jax.jit(_final_step, static_argnums=(0, 6))


def _transition_cycle(model, params, x, carry: Carry, rng, cycle, transition) -> Carry:
    """Cycle `cycle` on detached inputs, its answer update differentiated (in `params`) when `transition`."""
    frozen, x, carry = jax.lax.stop_gradient((params, x, carry))
    z = _refine_latent(model, _network_fn(model, frozen, rng), x, carry, cycle)
    h, index = carry.y + z, _answer_update_index(model, cycle)

    def update(p, remat):
        return _network_fn(model, p, rng, remat)(h, index)

    if isinstance(transition, bool):
        y = update(params, True) if transition else update(frozen, False)
    else:
        y = jax.lax.cond(transition, lambda: update(params, True), lambda: update(frozen, False))
    return Carry(y, z)
