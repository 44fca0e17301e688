"""Test-time adaptation: new puzzle identifiers' embedding rows (or every weight) trained on demonstration pairs.

A model with a puzzle-embedding table knows a puzzle only through its identifier's row; a puzzle the
run never trained on has none. `adapt_puzzle_embeddings` grows the table to the new identifiers, starts
their rows from the mean of the trained rows, and trains them with the train step itself (deep
supervision with a persistent carry, halting, the same loss and sparse sign-SGD), its dense update
switched off (`StepSpec.train_dense`): the rest of the model is left bit for bit, and so are the rows
of identifiers not in the adaptation data, so those keep their answers. `train="all"` fine-tunes every
weight as well; replay (a share of every batch's slots drawn from the run's own training samples, with
their own identifiers) keeps it from erasing what the run learned.

The whole adaptation is one compiled program called once per step: a fixed batch of slots, the
adaptation rows held on every device, each step's rows drawn on device from the step's key, metrics
read back one window behind for the progress bar (no host sync per step).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from trm_jax.config import TrainingConfig, TRMConfig
from trm_jax.data.datasets import ArrayDataset
from trm_jax.errors import TRMError
from trm_jax.models import IGNORE_LABEL, PUZZLE_EMB, TinyRecursiveModel
from trm_jax.training import distributed as dist
from trm_jax.training.evaluation import summarize
from trm_jax.training.state import TrainState, make_optimizer, make_train_state
from trm_jax.training.step import AXIS, StepSpec, empty_train_carry, make_train_step

logger = logging.getLogger(__name__)

ADAPT_MODES = ("embeddings", "all")  # what trains: the data's table rows, or those and every dense weight
REPLAY_DEFAULT = 0.5  # train="all" with replay data: half of every batch's slots replay the run's own samples
REPLAY_MAX_ROWS = 1 << 16  # replay rows held on the device: a random subset of a larger training set
PROGRESS_WINDOW = 20  # steps per progress-bar reading (metrics are read one window behind)


def adapt_puzzle_embeddings(model: TinyRecursiveModel, params: dict, data, *, steps: int,
                            learning_rate: Optional[float] = None, batch_size: Optional[int] = None,
                            train: str = "embeddings", replay: Optional[float] = None, replay_data=None,
                            rng=None, training: Union[TrainingConfig, TRMConfig, None] = None,
                            progress: bool = True):
    """Adapt a model with a puzzle-embedding table to the puzzles of `data`.

    Identifiers at or beyond the table's rows grow it: the returned model has `num_puzzle_identifiers =
    max id + 1`. The rows the data trains that hold no trained value (all zero: new, or never trained)
    start as the mean of the trained rows. Replayed samples (`train="all"`) keep their identifiers (rows of
    the trained table) and train like the adaptation rows (their rows by sign-SGD as well), so the
    identifiers the run trained on keep their answers; at most REPLAY_MAX_ROWS of them, drawn at random
    with `rng`, are held on the device. Each step is one supervision step for every slot of a fixed batch,
    under the run's learning-rate schedule without warmup; rows are drawn with replacement.

    Args:
        model: A `TinyRecursiveModel` with a puzzle-embedding table (variant "official",
            `puzzle_emb_ndim` > 0, `num_puzzle_identifiers` > 0).
        params: Its parameters (Flax's `{"params": ...}` is accepted too).
        data: `(inputs, labels, puzzle_ids)`: int arrays [N, seq_len], [N, seq_len] (IGNORE_LABEL masked)
            and [N]; a dict with those keys; or an ArrayDataset with puzzle_ids (its ignore_label_id
            masked).
        steps: Optimizer steps, >= 1.
        learning_rate: The puzzle rows' sign-SGD rate; None = `training.puzzle_emb_lr`.
        batch_size: Slots of the fixed batch; None = `training.batch_size`, at most the number of rows;
            rounded up to a multiple of the local devices.
        train: "embeddings": only the rows of the data's identifiers train, by sparse sign-SGD with
            `training.puzzle_emb_weight_decay`, and every other weight and row comes back unchanged.
            "all": every dense weight fine-tunes too, by the run's optimizer at `training.learning_rate`
            (the returned weights are the final ones, no EMA).
        replay: With `train="all"`: the share of every step's slots that take a replayed sample instead of
            an adaptation row; None = 0.5 when `replay_data` is given, else 0.
        replay_data: With `train="all"`: the run's own training samples (the forms of `data`, or the
            Trainer that trained the run: its training set).
        rng: An int seed or a PRNG key drawing the rows (None = seed 0); the same rng gives the same
            result.
        training: A `TrainingConfig` or the run's `TRMConfig`, giving the rates, weight decay, optimizer and
            batch size; None = TrainingConfig's defaults.
        progress: Show a progress bar.

    Returns:
        `(model, params)`: the model (with the grown table) and its adapted parameters.

    Raises:
        TRMError: A model without a puzzle-embedding table, params without one, malformed `data`, a bad
            `train`, `steps`, `learning_rate`, `batch_size` or `replay`, replay options with
            `train="embeddings"`, or more than one process.
    """
    training = training.training if isinstance(training, TRMConfig) else (training or TrainingConfig())
    if train not in ADAPT_MODES:
        raise TRMError(f"train must be one of {ADAPT_MODES} ('embeddings': only the data's identifiers' rows; "
                       f"'all': every weight as well), got {train!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise TRMError(f"steps must be an integer >= 1 (optimizer steps of the adaptation), got {steps!r}")
    if not model.has_puzzle_emb:
        raise TRMError("adapting to new puzzles needs a model with a puzzle-embedding table (variant 'official' with "
                       "puzzle_emb_ndim > 0 and num_puzzle_identifiers > 0); this model has none, so it cannot tell "
                       "puzzles apart: train one with a table (model.puzzle_emb_ndim, model.num_puzzle_identifiers)")
    wrapped = isinstance(params, Mapping) and set(params) == {"params"}  # what Flax's model.init returns
    params = dict(params["params"] if wrapped else params) if isinstance(params, Mapping) else params
    if not isinstance(params, dict) or PUZZLE_EMB not in params:
        raise TRMError(f"params has no '{PUZZLE_EMB}' table although the model has one; pass the params dict this "
                       "model was trained with (TRMParams: its .params)")
    if learning_rate is not None and not learning_rate > 0:
        raise TRMError(f"learning_rate must be > 0, got {learning_rate}")
    if jax.process_count() > 1:
        raise TRMError("adaptation runs on one host's devices; run it in a single process")
    inputs, labels, puzzle_ids, ignore = _check_data(model, data)
    replay_rows = _replay_rows(model, train, replay, replay_data, rng)

    rows = max(model.num_puzzle_identifiers, int(puzzle_ids.max()) + 1)
    grown = model if rows == model.num_puzzle_identifiers else model.clone(num_puzzle_identifiers=rows)
    start = {**params, PUZZLE_EMB: _start_rows(np.asarray(params[PUZZLE_EMB]), rows, np.unique(puzzle_ids))}

    n_local = jax.local_device_count()
    batch = int(batch_size) if batch_size is not None else min(training.batch_size, len(inputs))
    if batch < 1:
        raise TRMError(f"batch_size must be >= 1, got {batch_size}")
    batch = -(-batch // n_local) * n_local
    dense = train == "all"
    replay_slots = 0
    if replay_rows is not None:
        share = REPLAY_DEFAULT if replay is None else float(replay)
        if batch < 2:
            raise TRMError(f"replay needs batch_size >= 2 (slots for adaptation rows and for replayed samples), got "
                           f"{batch}")
        replay_slots = min(batch - 1, max(1, round(share * batch)))
    elif dense:
        logger.warning("adapting every weight (train='all') without replay: the identifiers the run trained on will "
                       "lose their answers; pass replay_data= (the run's training samples) to keep them")
    # this loop feeds a fresh batch every step: slots refill (the drop schedule is the Trainer's loop)
    tr = dataclasses.replace(training, warmup_steps=0, ema_decay=0.0, halted_samples="refill",
                             puzzle_emb_lr=float(learning_rate or training.puzzle_emb_lr))
    spec = StepSpec.create(tr, total_steps=int(steps), global_batch=batch, peak_lr=tr.learning_rate,
                           train_dense=dense)
    state = (make_train_state(start, make_optimizer(spec)) if dense else
             TrainState(step=jnp.int32(0), params=start, ema_params=None, opt_state=None, nonfinite=jnp.int32(0)))
    state = dist.replicate(jax.device_get(state))
    carry = dist.put_sharded(dist.shard(empty_train_carry(batch, grown)))
    held = _compact_rows(inputs, labels, puzzle_ids, ignore, model.num_tokens)
    if replay_slots:
        held["replay"] = _compact_rows(*replay_rows, model.num_tokens)
    rows_on_device = dist.replicate(held)
    step_fn = pmap_adapt_step(grown, spec, replay_slots)  # this adaptation's own: compiled on its first step
    key = np.asarray(_key_data(rng))

    bar = tqdm(total=int(steps), desc=f"adapt ({train})", dynamic_ncols=True, mininterval=1.0, disable=not progress)
    window, previous = [], None
    try:
        for i in range(int(steps)):
            state, carry, metrics = step_fn(state, carry, rows_on_device, key, np.int32(i))
            window.append(metrics)
            bar.update(1)
            if len(window) == PROGRESS_WINDOW or i == steps - 1:
                if previous is not None:  # the window before: done by now or soon, so the device never waits
                    _show(bar, previous)
                previous, window = window, []
        summary = _show(bar, previous)
    finally:
        bar.close()
    logger.info("adapted %d identifier(s) on %d rows in %d steps (%s, %d of %d slots replayed): loss %.4f, exact %.3f "
                "over the last %d steps", len(np.unique(puzzle_ids)), len(inputs), steps, train, replay_slots, batch,
                summary["loss"], summary["exact_accuracy"], len(previous))
    if summary["nonfinite"]:  # such steps change nothing (the train step skips them)
        logger.warning("adaptation: the last %d step(s) had a non-finite loss or gradient and were skipped; lower "
                       "learning_rate", summary["nonfinite"])
    if dense:
        out = jax.tree.map(jnp.asarray, dist.unreplicate(state.params))
    else:  # every dense weight is the very array that came in
        out = {**params, PUZZLE_EMB: jnp.asarray(dist.unreplicate(state.params[PUZZLE_EMB]))}
    return grown, {"params": out} if wrapped else out


def _show(bar, window) -> dict:
    summary = summarize(jax.device_get([dist.unreplicate(m) for m in window]))
    bar.set_postfix(loss=f"{summary['loss']:.3f}", exact=f"{summary['exact_accuracy']:.3f}", refresh=False)
    return summary


def _key_data(rng):
    """Raw key data of an int seed, a typed key or raw key data (None = seed 0)."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return jax.random.key_data(jax.random.key(0 if rng is None else int(rng)))
    if jnp.issubdtype(jnp.asarray(rng).dtype, jax.dtypes.prng_key):
        return jax.random.key_data(rng)
    return rng


def _replay_rows(model: TinyRecursiveModel, train: str, replay, replay_data, rng):
    """(inputs, labels, puzzle_ids, masked label) of the samples to replay (at most REPLAY_MAX_ROWS, drawn by
    `rng`), or None when nothing replays: `replay` 0, or neither `replay` nor `replay_data` given, or
    `replay_data` with `train="embeddings"` and `replay` left at its default."""
    if replay is not None and (isinstance(replay, bool) or not isinstance(replay, (int, float, np.integer, np.floating))
                               or not 0 <= replay < 1):
        raise TRMError(f"replay must be the share of every batch's slots that replay the run's own samples, in "
                       f"[0, 1), got {replay!r}")
    if replay == 0 or (replay is None and (replay_data is None or train != "all")):
        return None
    if train != "all":
        raise TRMError("replay applies to train='all': adapting only the new identifiers' rows (train='embeddings') "
                       "leaves every trained identifier's answers as they were; drop replay")
    if replay_data is None:
        raise TRMError("replay needs the run's own training samples: pass replay_data= (an ArrayDataset with "
                       "puzzle_ids, (inputs, labels, puzzle_ids), such a dict, or the Trainer that trained the run)")
    if hasattr(replay_data, "stage") and hasattr(replay_data, "train"):  # a Trainer (trainer.py sits above)
        if replay_data.stage is None:
            raise TRMError("replay_data: the Trainer has not trained yet (no training set); train it first or pass its "
                           "dataset")
        replay_data = replay_data.stage.train_set
    seed = np.asarray(_key_data(rng)).ravel().astype(np.uint64)
    inputs, labels, ids, ignore = _check_data(model, replay_data, "replay data", REPLAY_MAX_ROWS,
                                              np.random.default_rng(seed))
    if ids.max() >= model.num_puzzle_identifiers:
        raise TRMError(f"replay data: puzzle identifiers up to {int(ids.max())}, but the model's table has "
                       f"{model.num_puzzle_identifiers} rows; replay the samples the run trained on (their identifiers "
                       "are rows of its table)")
    return inputs, labels, ids, ignore


def _check_data(model: TinyRecursiveModel, data, what: str = "adaptation data", max_rows: Optional[int] = None,
                rng=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(inputs, labels, puzzle_ids int32, the masked label value), checked against the model (`what` names the
    data in errors). Token arrays keep their integer dtype (uint8 rows of a large ARC adaptation are not copied
    into int32). With `max_rows`, at most that many rows, drawn at random by `rng` (np.random.Generator)
    before the arrays are read, so a memory-mapped training set is read only where drawn."""
    ignore = IGNORE_LABEL
    if isinstance(data, ArrayDataset):
        if data.puzzle_ids is None:
            raise TRMError(f"{what}: the ArrayDataset has no puzzle_ids; adaptation trains identifiers' rows")
        ignore = IGNORE_LABEL if data.ignore_label_id is None else int(data.ignore_label_id)
        data = (data.inputs, data.labels, data.puzzle_ids)
    elif isinstance(data, dict):
        missing = {"inputs", "labels", "puzzle_ids"} - set(data)
        if missing:
            raise TRMError(f"{what}: the dict needs keys 'inputs', 'labels', 'puzzle_ids' (missing {sorted(missing)})")
        data = (data["inputs"], data["labels"], data["puzzle_ids"])
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise TRMError(f"{what} must be (inputs, labels, puzzle_ids): arrays [N, seq_len], [N, seq_len], [N]")
    if max_rows is not None and len(data[0]) > max_rows and all(len(a) == len(data[0]) for a in data):
        pick = np.sort(rng.choice(len(data[0]), max_rows, replace=False))
        data = [a[pick] for a in data]
    arrays = [np.asarray(a) for a in data]
    for name, a in zip(("inputs", "labels", "puzzle_ids"), arrays):
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise TRMError(f"{what}: {name} must hold integers, got {a.dtype}")
    inputs, labels, ids = arrays[0], arrays[1], arrays[2].astype(np.int32)
    seq = model.token_len
    if inputs.ndim != 2 or inputs.shape[1] != seq or len(inputs) == 0:
        raise TRMError(f"{what}: inputs must be [N >= 1, {seq}] (the model's seq_len), got {inputs.shape}")
    if labels.shape != inputs.shape:
        raise TRMError(f"{what}: labels must have the inputs' shape {inputs.shape}, got {labels.shape}")
    if ids.shape != (len(inputs),):
        raise TRMError(f"{what}: puzzle_ids must be [{len(inputs)}] (one per row), got {ids.shape}")
    if ids.min() < 0:
        raise TRMError(f"{what}: puzzle_ids must be >= 0, got {int(ids.min())}")
    vocab = model.num_tokens
    for name, a, masked in (("inputs", inputs, None), ("labels", labels, ignore)):
        bad = (a < 0) | (a >= vocab)
        if masked is not None:
            bad &= a != masked
        if bad.any():
            note = "" if masked is None else f" (masked labels are {masked})"
            raise TRMError(f"{what}: {name} row {int(np.nonzero(bad)[0][0])} holds tokens outside the "
                           f"vocabulary [0, {vocab}){note}")
    return inputs, labels, ids, ignore


COMPACT_IGNORE = 255  # the masked label in rows stored as uint8


def _compact_rows(inputs, labels, puzzle_ids, ignore: int, vocab: int) -> dict:
    """The adaptation rows as the device holds them: uint8 tokens when the vocabulary fits (a quarter of
    the memory of int32; every device holds every row), masked labels as COMPACT_IGNORE; else int32 with
    masked labels IGNORE_LABEL."""
    masked = labels == ignore
    if vocab <= COMPACT_IGNORE:
        return dict(inputs=inputs.astype(np.uint8), labels=np.where(masked, COMPACT_IGNORE, labels).astype(np.uint8),
                    puzzle_ids=puzzle_ids)
    return dict(inputs=inputs.astype(np.int32), labels=np.where(masked, IGNORE_LABEL, labels).astype(np.int32),
                puzzle_ids=puzzle_ids)


def _expand_rows(rows: dict) -> dict:
    """Inverse of `_compact_rows` on device: int32 tokens, masked labels IGNORE_LABEL."""
    inputs, labels = rows["inputs"].astype(jnp.int32), rows["labels"]
    if labels.dtype == jnp.uint8:
        labels = jnp.where(labels == COMPACT_IGNORE, IGNORE_LABEL, labels.astype(jnp.int32))
    return dict(inputs=inputs, labels=labels, puzzle_ids=rows["puzzle_ids"])


def _start_rows(table: np.ndarray, rows: int, adapted_ids: np.ndarray) -> np.ndarray:
    """The table grown to `rows`, the adapted identifiers' untrained rows set to the mean of the trained rows.

    Rows never trained hold their zero initialisation (sign-SGD and its weight decay touch only the rows
    a step uses). The official pretrain.py `load_checkpoint` re-initialises a table whose shape does not
    fit as the mean of the checkpoint's rows (every row); here only rows without a trained value take the
    mean, so trained identifiers keep theirs."""
    trained = np.any(table != 0, axis=1)
    mean = table[trained].mean(axis=0) if trained.any() else np.zeros(table.shape[1], table.dtype)
    out = np.concatenate([table, np.zeros((rows - len(table), table.shape[1]), table.dtype)])
    fresh = adapted_ids[~np.any(out[adapted_ids] != 0, axis=1)]
    out[fresh] = mean.astype(table.dtype)
    return out


def pmap_adapt_step(model: TinyRecursiveModel, spec: StepSpec, replay_slots: int = 0):
    """The pmapped adaptation step for `(model, spec)`: `(state, carry, rows, key, step) -> (state, carry,
    metrics)`; each step draws its batch from `rows` (every device holds them all) with the step's key, then
    runs the train step. With `replay_slots`, that many of the global batch's slots (spread evenly over it,
    fixed for the whole adaptation) take their rows from `rows["replay"]` instead."""
    train_step = make_train_step(model, spec)
    global_batch = spec.global_batch
    g = np.arange(global_batch)
    # slot g replays when the running count of replay slots steps up at g: exactly replay_slots of them, evenly spread
    replayed = (g + 1) * replay_slots // global_batch > g * replay_slots // global_batch

    def draw(rows, key, offset, b):
        # drawn for the whole global batch and sliced: the rows do not depend on the device split
        picks = jax.random.randint(key, (global_batch,), 0, rows["inputs"].shape[0])
        picks = jax.lax.dynamic_slice_in_dim(picks, offset, b)
        return _expand_rows({k: rows[k][picks] for k in ("inputs", "labels", "puzzle_ids")})

    def adapt_step(state, carry, rows, key, step):
        b = carry.halted.shape[0]
        offset = jax.lax.axis_index(AXIS) * b
        k_rows, k_step = jax.random.split(jax.random.fold_in(key, step))
        batch = draw(rows, k_rows, offset, b)
        if replay_slots:
            old = draw(rows["replay"], jax.random.fold_in(k_rows, 1), offset, b)
            slot = jax.lax.dynamic_slice_in_dim(jnp.asarray(replayed), offset, b)
            batch = {k: jnp.where(slot.reshape((b,) + (1,) * (v.ndim - 1)), old[k], v) for k, v in batch.items()}
        batch["difficulty"] = jnp.zeros((b,), jnp.float32)
        return train_step(state, carry, batch, k_step)

    return jax.pmap(adapt_step, axis_name=AXIS, in_axes=(0, 0, 0, None, None), donate_argnums=(0, 1))
