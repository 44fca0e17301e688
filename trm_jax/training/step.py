"""Pure per-device train and eval steps, and their `jax.pmap` wrappers (the stage that builds one keeps it).

Deep supervision with a persistent carry, as in the official TRM code: a fixed number of batch
slots; every call is one supervision step for every slot. Slots that halted on the previous call are
refilled on device from the fresh batch (`jnp.where`), with their recursion state reset, so shapes
stay static and no host sync is needed. With `halted_samples="drop"` (the PyPI Trainer's schedule)
the slots refill only once all of them halted, and halted slots train nothing until then (the loop
compacts the rest: feed.py).

Randomness (halt exploration, dropout) is drawn for the whole *global* batch from the step key and
sliced by the device's position, so the trajectory does not depend on how many devices share the
batch.

Final-step supervision (`training.supervision: final`, after the Recursive Stem Model) uses the same
slots without a carry across steps: every slot is refilled every step and starts from the initial
carry, the forward is `trm_jax.models.final_step` (T-1 cycles without gradient, the loss on the last;
with probability `transition_grad_prob`, one draw per step from the step key, also through the
previous cycle's answer update), the loss is token cross-entropy only, and each sample halts after its
one step (recursion_depth 1).

A puzzle-embedding table (official variant) is never differentiated densely: the step gathers the
rows of its slots, differentiates those, and updates the touched rows by sign-SGD with decoupled
weight decay (official sparse_embedding.py), combined over all devices with `all_gather`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from trm_jax.config import TrainingConfig
from trm_jax.errors import TRMError
from trm_jax.models import (IGNORE_LABEL, PUZZLE_EMB, Carry, StepOutput, TinyRecursiveModel, compute_loss, final_step,
                            initial_carry, model_loss, predict, supervision_step, token_matches)
from trm_jax.models.trajectories import indexed_keys
from trm_jax.training.state import LRSchedule, TrainState, ema_decay_at, ema_update, make_optimizer, split_table

AXIS = "batch"  # the pmap axis name


class TrainCarry(NamedTuple):
    """Per-slot training state that persists across optimizer steps."""

    y: jax.Array  # [b, P+L, D] answer state
    z: jax.Array  # [b, P+L, D] latent state
    inputs: jax.Array  # [b, L] int32: the slot's current sample
    labels: jax.Array  # [b, L] int32 (IGNORE_LABEL masked)
    puzzle_ids: jax.Array  # [b] int32: the sample's puzzle identifier (0 without a table)
    difficulty: jax.Array  # [b] float32
    recursion_depth: jax.Array  # [b] int32: supervision steps this sample has had
    halted: jax.Array  # [b] bool: refill this slot on the next step


def empty_train_carry(batch: int, model: TinyRecursiveModel) -> TrainCarry:
    """All slots halted, so the first step fills every slot from its batch. Host (NumPy) arrays."""
    state = np.zeros((batch, model.total_len, model.dim), np.float32)
    seq = model.token_len
    return TrainCarry(state, state.copy(), np.zeros((batch, seq), np.int32),
                      np.full((batch, seq), IGNORE_LABEL, np.int32), np.zeros((batch,), np.int32),
                      np.zeros((batch,), np.float32), np.zeros((batch,), np.int32), np.ones((batch,), bool))


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Exactly the settings the compiled train step depends on (its cache key), besides the model."""

    optimizer: str
    beta1: float
    beta2: float
    adam_eps: float
    weight_decay: float
    grad_clip_norm: float
    warmup_steps: int
    lr_schedule: str
    min_lr_ratio: float
    total_steps: int
    peak_lr: float
    global_batch: int
    ema_decay: float
    halt_exploration_prob: float
    puzzle_emb_lr: float
    puzzle_emb_weight_decay: float
    ema_warmup: bool = True  # the EMA decay ramps up from 0 (state.ema_decay_at)
    halted_samples: str = "refill"  # TrainingConfig.halted_samples
    supervision: str = "deep"  # TrainingConfig.supervision: "deep" or "final"
    transition_grad_prob: float = 0.0  # TrainingConfig.transition_grad_prob (supervision "final")
    # False: only the puzzle-table rows train (test-time adaptation); the dense weights, their optimizer
    # state and EMA are left as they are, and no gradient of them is computed
    train_dense: bool = True

    @classmethod
    def create(cls, training: TrainingConfig, *, total_steps: int, global_batch: int, peak_lr: float,
               train_dense: bool = True) -> "StepSpec":
        own = {f.name for f in dataclasses.fields(cls)} - {"total_steps", "global_batch", "peak_lr", "train_dense"}
        return cls(total_steps=int(total_steps), global_batch=int(global_batch), peak_lr=float(peak_lr),
                   train_dense=bool(train_dense), **{k: getattr(training, k) for k in own})


# Per-step metric sums; the host divides after accumulating a window (see evaluation.summarize).
SUM_KEYS = ("loss", "ce", "halt_loss", "exact", "token_correct", "token_count", "samples", "halted",
            "recursion_depth", "difficulty")


def _where_rows(mask, new, old):
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


def _slice_global(x, offset, size):
    """Rows [offset, offset+size) of an array drawn for the whole global batch."""
    return jax.lax.dynamic_slice_in_dim(x, offset, size, axis=0)


def sparse_sign_sgd(table, ids, row_grads, lr, weight_decay):
    """Sign-SGD with decoupled weight decay on the rows `ids` of `table` (official sparse_embedding.py).

    Gradients of duplicate ids are summed before the sign. Work and memory are O(len(ids)), never
    O(rows of the table): unique ids are padded to a static size with an out-of-range id whose
    writes are dropped."""
    n = ids.shape[0]
    uniq, inverse = jnp.unique(ids, size=n, fill_value=table.shape[0], return_inverse=True)
    summed = jax.ops.segment_sum(row_grads.astype(jnp.float32), inverse.reshape(-1), num_segments=n)
    rows = table.at[uniq].get(mode="fill", fill_value=0)
    new_rows = rows * (1.0 - lr * weight_decay) - lr * jnp.sign(summed).astype(table.dtype)
    return table.at[uniq].set(new_rows.astype(table.dtype), mode="drop")


def make_train_step(model: TinyRecursiveModel, spec: StepSpec) -> Callable:
    """Build `train_step(state, carry, batch, rng) -> (state, carry, metrics)` for use under pmap(AXIS).

    `batch` holds this device's rows of the fresh global batch; `rng` is the same step key on every
    device. With `spec.train_dense` False only the puzzle table trains: `state.opt_state` and
    `state.ema_params` are passed through untouched (they may be None).
    """
    train_dense = spec.train_dense
    final = spec.supervision == "final"
    if spec.supervision not in ("deep", "final"):
        raise TRMError(f"unknown supervision {spec.supervision!r}: use deep or final")
    tx = make_optimizer(spec)
    lr_fn = LRSchedule(spec, spec.total_steps)
    max_recursion_depth = int(model.max_recursion_depth)
    drop = spec.halted_samples == "drop"
    threshold = float(model.halt_threshold)
    explore = float(spec.halt_exploration_prob)
    global_batch = spec.global_batch
    use_dropout = _has_dropout(model)
    has_table = model.has_puzzle_emb
    if not (train_dense or has_table):
        raise TRMError("a train step without dense updates trains only the puzzle-embedding table, and this model "
                       "has none (official variant with puzzle_emb_ndim > 0)")

    def model_step(params, tokens, carry: Carry, rng, puzzle_ids, delta, transition) -> StepOutput:
        if final:  # from the initial carry: `carry` is not read
            return final_step(model, params, tokens, rng=rng, puzzle_ids=puzzle_ids, puzzle_delta=delta,
                              transition=transition)
        return supervision_step(model, params, tokens, carry, rng=rng, puzzle_ids=puzzle_ids, puzzle_delta=delta)

    def forward(params, tokens, carry: Carry, keys, puzzle_ids, delta, transition) -> StepOutput:
        if not use_dropout:
            return model_step(params, tokens, carry, None, puzzle_ids, delta, transition)

        # One dropout key per global sample: masks do not depend on the device split.
        def one(tok, y, z, key, pid, d):
            out = model_step(params, tok[None], Carry(y[None], z[None]), key, pid[None],
                             None if d is None else d[None], transition)
            return jax.tree.map(lambda a: a[0], out)

        return jax.vmap(one)(tokens, carry.y, carry.z, keys, puzzle_ids, delta)

    def loss_parts(out: StepOutput, labels):
        """(per-sample loss, aux). Final-step supervision: token cross-entropy only (the halting head is not
        trained; its loss is reported as 0)."""
        if not final:
            return model_loss(model, out, labels)
        _, aux = compute_loss(out.logits, out.halt_logits, labels, halt_loss_weight=0.0, loss_type=model.loss)
        aux = {**aux, "halt_loss": jnp.zeros_like(aux["halt_loss"])}
        return aux["ce"], aux

    def draw_transition(key):
        """Whether the gradient also flows through the cycle before the last (final-step supervision): a
        Python bool where the probability is 0 or 1 (one program without the branch), else one draw from
        the step key, the same on every device."""
        p = float(spec.transition_grad_prob)
        if not final or p <= 0.0:
            return False
        if p >= 1.0:
            return True
        return jax.random.uniform(key) < p

    def train_step(state: TrainState, carry: TrainCarry, batch: dict, rng):
        b = carry.halted.shape[0]
        offset = jax.lax.axis_index(AXIS) * b
        k_explore, k_min, k_drop = jax.random.split(rng, 3)

        # 1. refill halted slots with fresh samples and reset their recursion state; dropping halted
        # samples, only once every slot (all devices) halted, and halted slots then train nothing;
        # final-step supervision refills every slot
        if final:
            fresh = live = jnp.ones_like(carry.halted)
        elif drop:
            everyone = jax.lax.pmin(jnp.all(carry.halted).astype(jnp.int32), AXIS).astype(bool)
            fresh = jnp.broadcast_to(everyone, carry.halted.shape)
            live = fresh | ~carry.halted
        else:
            fresh, live = carry.halted, jnp.ones_like(carry.halted)
        inputs = _where_rows(fresh, batch["inputs"], carry.inputs)
        labels = _where_rows(fresh, batch["labels"], carry.labels)
        batch_ids = batch.get("puzzle_ids", jnp.zeros((b,), jnp.int32))  # datasets without a table may omit it
        puzzle_ids = _where_rows(fresh, batch_ids.astype(jnp.int32), carry.puzzle_ids)
        difficulty = _where_rows(fresh, batch["difficulty"].astype(jnp.float32), carry.difficulty)
        if final:  # final_step starts from the initial carry itself
            rec = Carry(carry.y, carry.z)
        else:
            init = initial_carry(model, state.params, b)
            rec = Carry(_where_rows(fresh, init.y, carry.y), _where_rows(fresh, init.z, carry.z))
        depth = jnp.where(fresh, 0, carry.recursion_depth)
        # final-step supervision: the exploration keys are unused, the transition draw takes k_explore
        transition = draw_transition(k_explore)
        drop_keys = _slice_global(jax.random.split(k_drop, global_batch), offset, b) if use_dropout else None

        # 2. one supervision step; loss = mean over this device's slots (pmean below -> global mean).
        # With a puzzle table, the table is a constant of the differentiation; a zero delta added to
        # the gathered rows is differentiated instead, giving exactly the rows' gradient.
        dense, table = split_table(state.params)
        delta = jnp.zeros((b, table.shape[1]), table.dtype) if has_table else None

        # the mean over the live slots of all devices (the gradient's pmean below averages the devices)
        weight = live.astype(jnp.float32)
        loss_scale = jax.lax.axis_size(AXIS) / jnp.maximum(jax.lax.psum(weight.sum(), AXIS), 1.0)

        def loss_fn(dense, delta):
            params = dense if table is None else {**dense, PUZZLE_EMB: table}
            out = forward(params, inputs, rec, drop_keys, puzzle_ids, delta, transition)
            per_sample, aux = loss_parts(out, labels)
            return (per_sample * weight).sum() * loss_scale, (out, per_sample, aux)

        (loss, (out, per_sample, aux)), grads = jax.value_and_grad(
            loss_fn, argnums=(0, 1) if train_dense else 1, has_aux=True)(dense, delta)
        grads, row_grads = grads if train_dense else (None, grads)
        lr = lr_fn(state.step, spec.peak_lr)
        if train_dense:
            grads = jax.lax.pmean(grads, AXIS)
            grad_norm = optax.tree.norm(grads)
        else:  # the norm of what trains: every device's row gradients
            grad_norm = jnp.sqrt(jax.lax.psum(jnp.sum(jnp.square(row_grads.astype(jnp.float32))), AXIS))

        # 3. optimizer + EMA; a non-finite loss or gradient skips the update (counted, see Trainer).
        # optax.apply_if_finite is not used: it checks only the updates and lets them through after
        # max_consecutive_errors, where the run must skip every bad step and stop with an error.
        finite = jnp.isfinite(jax.lax.pmean(loss, AXIS)) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        if train_dense:
            updates, opt_state = tx.update(grads, state.opt_state, dense)
            new_dense = optax.apply_updates(dense, jax.tree.map(lambda u: -lr * u, updates))
            params = keep(new_dense, dense)
            ema_decay = ema_decay_at(state.step, spec.ema_decay, spec.ema_warmup)
            ema_params = keep(ema_update(state.ema_params, split_table(params)[0], ema_decay), state.ema_params)
            opt_state = keep(opt_state, state.opt_state)
        else:
            params, ema_params, opt_state = dense, state.ema_params, state.opt_state
        if has_table:
            trained_ids = jnp.where(live, puzzle_ids, table.shape[0])  # out of range: no update, no decay
            all_ids = jax.lax.all_gather(trained_ids, AXIS, tiled=True)
            all_grads = jax.lax.all_gather(row_grads, AXIS, tiled=True)
            # a skipped step writes its rows back unchanged (lr 0): no dense select over the table
            emb_lr = jnp.where(finite, lr_fn(state.step, spec.puzzle_emb_lr), 0.0)
            all_grads = jnp.where(finite, all_grads, 0.0)
            params = {**params, PUZZLE_EMB: sparse_sign_sgd(table, all_ids, all_grads, emb_lr,
                                                           spec.puzzle_emb_weight_decay)}
        new_state = TrainState(
            step=state.step + 1,
            params=params,
            ema_params=ema_params,
            opt_state=opt_state,
            nonfinite=jnp.where(finite, 0, state.nonfinite + 1).astype(jnp.int32),
        )

        # 4. halting: halt head or step cap; exploration forces a random minimum depth on some slots.
        # Final-step supervision: every sample ends after its one step.
        depth = depth + 1
        halt_prob = jax.nn.sigmoid(jax.lax.stop_gradient(out.halt_logits).astype(jnp.float32))
        halted = (depth >= max_recursion_depth) | (halt_prob >= threshold) | final
        if explore > 0 and max_recursion_depth > 1 and not final:
            u = _slice_global(jax.random.uniform(k_explore, (global_batch,)), offset, b)
            min_depth = jax.random.randint(k_min, (global_batch,), 2, max_recursion_depth + 1)
            min_depth = _slice_global(min_depth, offset, b)
            halted = halted & (depth >= jnp.where(u < explore, min_depth, 0))
        halted = halted | ~finite  # a diverged carry must not linger
        newly_halted = halted & live
        halted = halted | ~live
        depth = jnp.where(live, depth, depth - 1)
        new_carry = TrainCarry(out.carry.y, out.carry.z, inputs, labels, puzzle_ids, difficulty, depth, halted)

        live_sum = lambda x: jnp.where(live, x, 0).sum()  # noqa: E731
        sums = dict(loss=live_sum(per_sample), ce=live_sum(aux["ce"]), halt_loss=live_sum(aux["halt_loss"]),
                    exact=live_sum(aux["exact"]), token_correct=live_sum(aux["token_correct"]),
                    token_count=live_sum(aux["token_count"]), samples=weight.sum(), halted=newly_halted.sum(),
                    recursion_depth=jnp.where(newly_halted, depth, 0).sum(), difficulty=live_sum(difficulty))
        metrics = jax.lax.psum({k: v.astype(jnp.float32) for k, v in sums.items()}, AXIS)
        metrics.update(lr=lr.astype(jnp.float32), grad_norm=grad_norm.astype(jnp.float32),
                       nonfinite=new_state.nonfinite)
        return new_state, new_carry, metrics

    return train_step


def _has_dropout(model: TinyRecursiveModel) -> bool:
    return float(getattr(model.network, "dropout", 0.0) or 0.0) > 0


def eval_metrics(pred, batch) -> dict:
    """Per-sample eval results of a Prediction on a batch (rows padding the last batch count zero)."""
    correct, count, exact = token_matches(pred.tokens, batch["labels"])
    v = batch["valid"]
    return dict(exact=exact & v, token_correct=jnp.where(v, correct, 0), token_count=jnp.where(v, count, 0),
                recursion_depth=jnp.where(v, pred.recursion_depth, 0), halt_prob=pred.halt_prob, tokens=pred.tokens,
                settled=pred.settled & v)


def make_eval_step(model: TinyRecursiveModel, trajectories: int = 1, select: str = "halt") -> Callable:
    """`eval_step(params, batch, halt_threshold, max_recursion_depth, noise_std) -> per-sample metrics` with the
    model's predict; `batch` has inputs, labels, puzzle_ids and valid, and with noise "rng" (one raw key per
    sample, see `eval_step_inputs`)."""

    def eval_step(params, batch, halt_threshold, max_recursion_depth, noise_std=None):
        pred = predict(model, params, batch["inputs"], puzzle_ids=batch["puzzle_ids"], halt_threshold=halt_threshold,
                       max_recursion_depth=max_recursion_depth, trajectories=trajectories, noise_std=noise_std,
                       select=select, rng=batch.get("rng"))
        return eval_metrics(pred, batch)

    return eval_step


def eval_step_inputs(batch: dict, seed=None) -> dict:
    """The eval step's input dict from an `eval_batches` batch (padding rows are not valid). With `seed`,
    "rng" holds each row's trajectory key, derived from its dataset index (so results do not depend on the
    batch size or the number of devices)."""
    n = len(batch["inputs"])
    ids = batch.get("puzzle_ids")
    out = dict(inputs=np.asarray(batch["inputs"], np.int32), labels=np.asarray(batch["labels"], np.int32),
               puzzle_ids=np.zeros(n, np.int32) if ids is None else np.asarray(ids, np.int32),
               valid=np.asarray(batch.get("mask", np.ones(n, bool)), bool))
    if seed is not None:
        out["rng"] = indexed_keys(seed, np.maximum(batch["index"], 0))
    return out


def pmap_train_step(train_step: Callable) -> Callable:
    """pmap over local devices; state and carry buffers are donated (updated in place)."""
    return jax.pmap(train_step, axis_name=AXIS, in_axes=(0, 0, 0, None), donate_argnums=(0, 1))


def pmap_eval_step(eval_step: Callable) -> Callable:
    return jax.pmap(eval_step, axis_name=AXIS, in_axes=(0, 0, None, None, None))
