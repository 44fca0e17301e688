"""`adapt(params, puzzles)`: a run adapted to puzzles it never trained on, and `save_adapted_run`, its run directory.

The run's task turns the puzzles into rows with new puzzle identifiers and says what the adapted run
answers with (`Task.adaptation_data`; ARC: each task's augmentations, as its build makes them); the rows
train those identifiers' rows of the grown table (`adapt_puzzle_embeddings`, embeddings only by
default); the TRMParams that comes back carries the grown config and the task's adaptation, so `infer`
and `evaluate_run` use the new identifiers. With `train="all"` the run's own training set (its task's
train split) is replayed by default, so the puzzles it trained on keep their answers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional, Union

from trm_jax.config import CurriculumConfig
from trm_jax.errors import TRMError
from trm_jax.inference import TRMParams
from trm_jax.tasks import get_task
from trm_jax.training.adapt import adapt_puzzle_embeddings
from trm_jax.training.checkpoints import write_weights_checkpoint
from trm_jax.training.run_dir import CHECKPOINT_DIR, RunDirectory
from trm_jax.training.state import split_table

__all__ = ["adapt", "save_adapted_run"]

logger = logging.getLogger(__name__)


def adapt(params: TRMParams, puzzles=None, *, steps: int, learning_rate: Optional[float] = None,
          batch_size: Optional[int] = None, train: str = "embeddings", replay: Optional[float] = None,
          replay_data=None, seed: Optional[int] = None, progress: bool = True, **task_options) -> TRMParams:
    """A run adapted to puzzles it never trained on.

    The run's task turns the puzzles into rows with new puzzle identifiers, which train the new rows of
    the run's puzzle-embedding table (`adapt_puzzle_embeddings`); `save_adapted_run` writes the result
    as a run directory.

    Args:
        params: A run's `TRMParams` (`trm_jax.load(run_dir)`).
        puzzles: The puzzles, in the task's form. ARC: a dict {task_id: task} or a source
            ("arc-agi-1:evaluation", a Kaggle *_challenges.json file, a folder of task JSONs); None = the
            run's evaluation set.
        steps: Optimizer steps (see `adapt_puzzle_embeddings`).
        learning_rate: See `adapt_puzzle_embeddings`.
        batch_size: See `adapt_puzzle_embeddings`.
        train: "embeddings" (only the new rows) or "all" (every weight as well); see
            `adapt_puzzle_embeddings`.
        replay: With `train="all"`: the share of every batch that replays `replay_data` (default 0.5);
            0 turns replay off.
        replay_data: With `train="all"`: the run's own training samples; None = the run's training set as
            its task builds it (ARC: the run's build, from its cache or its source). Where the task cannot
            build it, adaptation goes on without replay and says so (with `replay` given, that is an
            error).
        seed: Draws the task's data and the batches; None = the run's seed.
        progress: Show a progress bar.
        **task_options: The task's own options. ARC: `num_aug`, augmentations per task (default 100).

    Returns:
        A `TRMParams` with the grown table and the task's adaptation, which `infer` and
        `scripts/evaluate.py` use.

    Raises:
        TRMError: `params` is not a TRMParams, the task has no test-time adaptation, a bad option, or
            replay is asked for (`replay` given) but the run's training set cannot be built.
    """
    if not isinstance(params, TRMParams):
        raise TRMError("adapt() takes a run's TRMParams (trm_jax.load(run_dir)); for a model and a params dict use "
                       "trm_jax.adapt_puzzle_embeddings(model, params, (inputs, labels, puzzle_ids), steps=N)")
    task = get_task(params.config)
    data, adaptation = task.adaptation_data(params, puzzles, seed=seed, **task_options)
    if train == "all" and replay_data is None and replay != 0:
        replay_data = _run_training_set(task, params, required=replay is not None)
    model, trained = adapt_puzzle_embeddings(
        params.model, params.params, data, steps=steps, learning_rate=learning_rate, batch_size=batch_size,
        train=train, replay=replay, replay_data=replay_data, rng=params.config.seed if seed is None else seed,
        training=params.config.training, progress=progress)
    model_cfg = dataclasses.replace(params.config.model, num_puzzle_identifiers=model.num_puzzle_identifiers)
    return dataclasses.replace(params, params=trained, config=params.config.replace(model=model_cfg),
                               adaptation=adaptation)


def _run_training_set(task, params: TRMParams, *, required: bool):
    """The run's training set with its puzzle identifiers, as its task builds it, or None (with a warning)
    where the task cannot build it or its samples carry no identifiers; `required`: a TRMError instead."""
    try:
        train = task.datasets(params.tokenizer, seq_len=params.seq_len)[0]
        why = None if getattr(train, "puzzle_ids", None) is not None else "its samples carry no puzzle identifiers"
    except (TRMError, OSError) as e:
        train, why = None, f"it could not be built ({e})"
    if why is None:
        return train
    if required:
        raise TRMError(f"replay needs the run's training set, but {why}; pass replay_data= (an ArrayDataset with "
                       "puzzle_ids) or replay=0")
    logger.warning("adapting every weight without replay, since the run's training set is not at hand: %s; the "
                   "puzzles the run trained on will lose their answers (pass replay_data=)", why)
    return None


def save_adapted_run(params: TRMParams, directory: Union[str, os.PathLike]) -> str:
    """Write an adapted run (`adapt`'s result) as a new run directory.

    The directory gets the config with the grown table, the tokenizer, the RAG store, one checkpoint
    and the task's adaptation; `trm_jax.load`, `infer` and `scripts/evaluate.py` use it.

    Args:
        params: The `TRMParams` to write (what `adapt` returns).
        directory: The new run directory.

    Returns:
        The directory's absolute path.

    Raises:
        TRMError: `directory` already holds checkpoints, or it cannot be written.
    """
    out = os.path.abspath(os.fspath(directory))
    ckpt_dir = os.path.join(out, CHECKPOINT_DIR)
    if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise TRMError(f"{out} already holds checkpoints; write the adapted run to a new directory")
    # the config already has the loaded stage's width and length: without its curriculum, load reads them
    # as they are (with it, load would take the last stage's)
    config = params.config.replace(run_dir=out, curriculum=CurriculumConfig())
    run = RunDirectory(out, process_index=0, progress_bar=False)
    try:
        run.write_run_files(config, params.tokenizer, params.retriever, resume=False)
        step = int(params.step or 0)
        # both weight fields hold the adapted weights (the EMA's without the puzzle table, as training keeps it)
        write_weights_checkpoint(ckpt_dir, step, params.params, split_table(params.params)[0],
                                 {"adapted_from": params.run_dir})
        if params.adaptation is not None:
            params.adaptation.save(out)
    except OSError as e:
        raise run.unwritable(e) from None
    finally:
        run.close()
    return out
