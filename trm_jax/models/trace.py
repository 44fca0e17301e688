"""predict_steps: the recursion of a few samples step by step, with predict's stop rules (what `trm_jax.trace`
draws).

The loop body is predict's own `predict_step`, so a trajectory stops at the same step, for the same reason,
with the same answer as in `predict`; the loop also writes each step's answers and halt probabilities into a
buffer of [depth cap, ...] rows. That buffer grows with the cap (unlike predict's loop): meant for a small
batch. Its length is the cap rounded up to a power of two, the cap itself a traced value, so nearby caps
share one compiled program.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.errors import TRMError
from trm_jax.models.predict import (StopRule, check_verifier, initial_rows, is_traced, power_of_two_at_least,
                                    predict_step, resolve_inputs, start_rows, verdicts)
from trm_jax.models.trajectories import (DEFAULT_NOISE_ON, Trajectories, as_trajectories, check_options,
                                         chosen_index)

STOP_REASONS = ("halted", "settled", "cap")  # the halting head, a settled answer, the depth cap


class StepRecord(NamedTuple):
    """Every supervision step of K trajectories of a batch (numpy arrays; `steps` = the deepest trajectory's
    depth). After a trajectory stopped, its entries repeat its final answer and halt probability."""

    tokens: np.ndarray  # [steps, K, batch, seq_len] int32 answer (argmax tokens) after each step
    halt_prob: np.ndarray  # [steps, K, batch] sigmoid(halt_logit) after each step
    recursion_depth: np.ndarray  # [K, batch] the step (1-based) each trajectory stopped at
    stopped_by: np.ndarray  # [K, batch] str: "halted" (the head), "settled" (the answer settled) or "cap"
    chosen: np.ndarray  # [batch] the trajectory predict(..., select=select) answers with
    verified: Optional[np.ndarray]  # [K, batch] bool: the verifier accepts the final answer (None without one)

    def answers(self) -> np.ndarray:
        """[K, batch, seq_len] each trajectory's final answer (what predict_trajectories returns)."""
        k, b = np.indices(self.recursion_depth.shape)
        return self.tokens[self.recursion_depth - 1, k, b]

    def chosen_answers(self) -> np.ndarray:
        """[batch, seq_len] the chosen trajectory's final answer (what predict returns)."""
        return self.answers()[self.chosen, np.arange(self.chosen.shape[0])]


def predict_steps(model, params, tokens, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
                  halting=None, settle_steps=None, trajectories: int = 1, noise_std=None, rng=None,
                  noise_on: str = DEFAULT_NOISE_ON, select: str = "halt",
                  verifier: Optional[Callable] = None) -> StepRecord:
    """The recursion step by step: every trajectory's answer and halt probability after every supervision step.

    Options as `predict` (same defaults, same stop rules, same noise keys): the answer at the stop step
    equals predict's. Eager only (it returns numpy arrays of the length the recursion ran); its buffers grow
    with the depth cap, so it is meant for a small batch.

    Args:
        model: A `TinyRecursiveModel`.
        params: Its parameters.
        tokens: Input token ids [batch, seq_len].
        puzzle_ids: As `predict`.
        halt_threshold: As `predict`.
        max_recursion_depth: As `predict`.
        halting: As `predict`.
        settle_steps: As `predict`.
        trajectories: As `predict`.
        noise_std: As `predict`.
        rng: As `predict`.
        noise_on: The carry state the noise is added to: "y" (the answer state), "z" (the latent) or "both".
        select: As `predict`: decides which trajectory is `chosen`.
        verifier: As `predict`, for `select="verify"` and the `verified` flags.

    Returns:
        A `StepRecord`: `tokens` [steps, K, batch, seq_len] and `halt_prob` [steps, K, batch] after each
        step (repeating a trajectory's last entry after it stopped), `recursion_depth` and `stopped_by`
        ("halted", "settled" or "cap") [K, batch], `chosen` [batch] (the trajectory `predict` answers with)
        and `verified` [K, batch] (None without a verifier).

    Raises:
        TRMError: Called under `jax.jit`, or a bad option (as `predict`).
    """
    noise_std = check_options(trajectories, noise_std, select)
    check_verifier(select, verifier)
    if is_traced(params, tokens, puzzle_ids, halt_threshold, max_recursion_depth, settle_steps, noise_std, rng):
        raise TRMError("predict_steps records a trace on the host: call it outside jax.jit")
    model, tokens, ids, rule, halting, noise_std, keys = resolve_inputs(
        model, tokens, puzzle_ids, halt_threshold, max_recursion_depth, halting, settle_steps, noise_std, rng,
        noise_on)
    cap = int(rule.max_recursion_depth)
    out = _record(model, params, tokens, ids, rule, halting, trajectories, noise_std, keys, noise_on,
                  power_of_two_at_least(cap))
    steps, answers, probs, final = jax.device_get(out)
    answers = answers[:steps].reshape((steps, trajectories, -1, tokens.shape[1]))
    probs = probs[:steps].reshape((steps, trajectories, -1))
    result = as_trajectories(*final, trajectories)
    reason = np.where(result.settled, "settled" if halting == "settled" else "halted", "cap")
    verified = verdicts(result, tokens, verifier)
    if trajectories == 1:
        chosen = np.zeros(tokens.shape[0], np.int64)
    else:
        chosen = np.asarray(chosen_index(Trajectories(*(jnp.asarray(a) for a in result)), select, verified))
    return StepRecord(answers, probs, np.asarray(result.recursion_depth), reason, chosen, verified)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 9, 10))
def _record(model, params, tokens, puzzle_ids, rule: StopRule, halting: str, trajectories: int, noise_std, keys,
            noise_on: str, length: int):
    """(steps run, answers [length, rows, seq], halt probs [length, rows], (tokens, depth, halt_logit, settled)
    of every row): predict's loop, writing each step's row state into the buffers."""
    x, carry, noise = start_rows(model, params, tokens, puzzle_ids, trajectories, noise_std, keys)
    rows = initial_rows(carry, trajectories * tokens.shape[0], tokens.shape[1])
    answers = jnp.zeros((length,) + rows.tokens.shape, jnp.int32)
    probs = jnp.zeros((length,) + rows.halt_logit.shape, jnp.float32)

    def cond(state):
        step, rows, _, _ = state
        return (step < rule.max_recursion_depth) & ~jnp.all(rows.halted)

    def body(state):
        step, rows, answers, probs = state
        step, rows = predict_step(model, params, x, step, rows, rule, halting, noise, noise_on)
        return (step, rows, answers.at[step - 1].set(rows.tokens),
                probs.at[step - 1].set(jax.nn.sigmoid(rows.halt_logit)))

    step, rows, answers, probs = jax.lax.while_loop(cond, body, (jnp.int32(0), rows, answers, probs))
    return step, answers, probs, rows.outputs()
