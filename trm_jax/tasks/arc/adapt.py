"""ARC test-time adaptation: new tasks get identifiers after the run's, rows built as its build does, the usual vote.

Each new task gets its augmentations exactly as the run's build would give an evaluation task (the
original and up to `num_aug` dihedral x colour-permutation variants, drawn from the task's own generator
with the run's seed) and one new puzzle identifier per augmentation, appended after the rows of the
run's table. Its demonstration pairs, translated on the canvas as the build translates them, are the rows
`trm_jax.adapt` trains those identifiers on (`adapt_puzzle_embeddings`); its test inputs never are.

The adapted identifiers and tasks live in an `ArcAdaptation` attached to the TRMParams (`.adaptation`)
and saved as `adapted_tasks.json` in an adapted run directory, so `trm_jax.load`, `trm_jax.infer` and
`scripts/evaluate.py` use them: the voting then runs over the adapted identifiers of each task.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Mapping, Optional

import numpy as np

from trm_jax.data.datasets import ArrayDataset
from trm_jax.errors import TRMError
from trm_jax.tasks.arc.build import (ARC_SEQ_LEN, augmentation_names, encode_task_pairs, eval_task_pairs, load_tasks,
                                     parse_source, task_augmentations, translation_rng)
from trm_jax.tasks.arc.evaluation import (ARC_PASS_KS, ArcEvalResult, augmented_test_rows, demo_key, evaluate_arc,
                                          model_predict_fn, vote_on_task)
from trm_jax.tasks.arc.sources import validate_task

logger = logging.getLogger(__name__)

ADAPTED_TASKS_FILE = "adapted_tasks.json"  # in an adapted run directory
ADAPTATION_FORMAT = 1
ADAPT_NUM_AUG = 100  # augmentations per adapted task (training builds use 1000): each must train in few steps
BLANK = "<blank>"


@dataclasses.dataclass(frozen=True, eq=False)
class ArcAdaptation:
    """The tasks an adapted run answers and their puzzle identifiers.

    Row `first_id + i` of the table is the identifier `names[i]`; task `t` owns `names[start:stop]` for
    `blocks[t] == (start, stop)`. Voting uses local identifiers: 0 is the blank one, local `j` is row
    `first_id + j - 1` (see `identifiers`, `table_ids`). Compared by identity (it rides in a TRMParams'
    static part)."""

    first_id: int
    names: tuple
    blocks: Mapping[str, tuple]
    tasks: Mapping[str, dict]  # in adaptation order; test outputs where known
    settings: tuple = ()  # one dict per adaptation that built it: tasks, num_aug, seed, first_row

    @property
    def identifiers(self) -> list:
        return [BLANK, *self.names]

    def local_ids(self, task_id: str) -> list:
        start, stop = self.blocks[task_id]
        return list(range(start + 1, stop + 1))

    def table_ids(self, local_ids: np.ndarray) -> np.ndarray:
        """Table rows of local identifiers (0, the blank identifier, stays 0)."""
        local_ids = np.asarray(local_ids, np.int32)
        return np.where(local_ids > 0, local_ids + self.first_id - 1, 0).astype(np.int32)

    def find(self, task: dict) -> Optional[str]:
        """The id of the adapted task with the same demonstration pairs as `task`, or None."""
        key = demo_key(task)
        return next((tid for tid, t in self.tasks.items() if demo_key(t) == key), None)

    def predict_fn(self, predict_fn):
        """`predict_fn` (table rows) as one taking local identifiers."""
        return lambda inputs, puzzle_ids: predict_fn(inputs, self.table_ids(puzzle_ids))

    def after(self, earlier: Optional["ArcAdaptation"]) -> "ArcAdaptation":
        """This adaptation appended to an earlier one of the same run (its rows follow the earlier ones); a
        task adapted again answers with its new identifiers."""
        if earlier is None:
            return self
        if self.first_id != earlier.first_id + len(earlier.names):
            raise TRMError("the run's table does not end with its earlier adaptation's identifiers; adapt the "
                           "original run to all tasks at once")
        shift = len(earlier.names)
        blocks = {**earlier.blocks, **{t: (a + shift, b + shift) for t, (a, b) in self.blocks.items()}}
        return ArcAdaptation(earlier.first_id, earlier.names + self.names, blocks, {**earlier.tasks, **self.tasks},
                             earlier.settings + self.settings)

    def save(self, run_dir: str) -> str:
        path = os.path.join(run_dir, ADAPTED_TASKS_FILE)
        with open(path, "w") as f:
            json.dump(dict(format=ADAPTATION_FORMAT, first_id=self.first_id, names=list(self.names),
                           blocks={t: list(b) for t, b in self.blocks.items()}, tasks=dict(self.tasks),
                           settings=list(self.settings)), f)
        return path

    @classmethod
    def load(cls, run_dir: str) -> Optional["ArcAdaptation"]:
        """The adaptation saved in `run_dir`, or None for a run that was not adapted."""
        path = os.path.join(run_dir, ADAPTED_TASKS_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                raw = json.load(f)
            if raw.get("format") != ADAPTATION_FORMAT:
                raise TRMError(f"{path} has format {raw.get('format')!r}, this trm_jax reads {ADAPTATION_FORMAT}; "
                               "adapt the run again with this version (scripts/adapt.py)")
            out = cls(int(raw["first_id"]), tuple(raw["names"]), {t: tuple(b) for t, b in raw["blocks"].items()},
                      raw["tasks"], tuple(raw.get("settings", ())))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise TRMError(f"{path} cannot be read ({e}); adapt the run again (scripts/adapt.py)") from None
        if set(out.blocks) != set(out.tasks) or any(not 0 <= a < b <= len(out.names) for a, b in out.blocks.values()):
            raise TRMError(f"{path} is inconsistent (its tasks and identifier blocks disagree); adapt the run again")
        return out


def read_tasks(tasks) -> dict:
    """Tasks to adapt to, validated: a dict {task_id: task} or a source ("arc-agi-1:evaluation", a Kaggle
    *_challenges.json file, a folder of task JSONs; split default "evaluation")."""
    if isinstance(tasks, (str, os.PathLike)):
        return load_tasks(*parse_source(os.fspath(tasks), "evaluation"))
    if not isinstance(tasks, Mapping) or not tasks:
        raise TRMError("ARC adaptation takes tasks as a non-empty dict {task_id: task} or a source such as "
                       f"'arc-agi-1:evaluation' or a *_challenges.json path, got {type(tasks).__name__}")
    return {str(tid): validate_task(str(tid), task, "adaptation tasks") for tid, task in tasks.items()}


def adaptation_rows(tasks: dict, *, num_aug: int, seed: int, first_id: int
                    ) -> tuple[ArrayDataset, list, dict]:
    """(demonstration rows as the run's build makes them, identifier names from row `first_id`, blocks).

    Rows: every demonstration pair under every augmentation of its task, translated, labels 0 (pad) masked;
    puzzle ids are table rows."""
    names, blocks, plans, total = [], {}, [], 0
    for tid, task in tasks.items():
        aug_pairs, demos, _ = eval_task_pairs(task)
        tids, maps = task_augmentations(tid, aug_pairs, num_aug, seed)
        blocks[tid] = (len(names), len(names) + len(tids))
        plans.append((tid, demos, tids, maps, first_id + len(names), total))
        names.extend(augmentation_names(tid, tids, maps))
        total += len(tids) * len(demos)
    arrays = (np.zeros((total, ARC_SEQ_LEN), np.uint8), np.zeros((total, ARC_SEQ_LEN), np.uint8),
              np.zeros(total, np.int32))
    for tid, demos, tids, maps, ids0, row0 in plans:
        encode_task_pairs(demos, tids, maps, arrays, row0, ids0, True, translation_rng(seed, tid))
    inputs, labels, ids = arrays
    data = ArrayDataset(inputs, labels, np.zeros(total, np.float32), puzzle_ids=ids, ignore_label_id=0)
    return data, names, blocks


def adaptation_data(params, tasks, *, num_aug: int = ADAPT_NUM_AUG, seed: Optional[int] = None
                    ) -> tuple[ArrayDataset, ArcAdaptation]:
    """(the rows to adapt on, the ArcAdaptation the adapted run answers with) for `tasks` (see `read_tasks`)
    and an ARC run's TRMParams `params`: identifiers from the first row after the run's table, augmentations
    and translations drawn with `seed` (default the run's, as its build). An earlier adaptation of the run
    is kept (`ArcAdaptation.after`)."""
    tasks = read_tasks(tasks)
    if isinstance(num_aug, bool) or not isinstance(num_aug, (int, np.integer)) or num_aug < 0:
        raise TRMError(f"num_aug must be an integer >= 0 (augmentations per task besides the original), got "
                       f"{num_aug!r}")
    seed = int(params.config.seed if seed is None else seed)
    first_id = params.config.model.num_puzzle_identifiers  # new rows start after the run's table
    data, names, blocks = adaptation_rows(tasks, num_aug=int(num_aug), seed=seed, first_id=first_id)
    logger.info("ARC adaptation: %d task(s), %d identifiers, %d demonstration rows", len(tasks), len(names), len(data))
    settings = dict(tasks=len(tasks), num_aug=int(num_aug), seed=seed, first_row=first_id)
    adaptation = ArcAdaptation(first_id, tuple(names), blocks, tasks, (settings,))
    return data, adaptation.after(params.adaptation)


def evaluate_adapted(params, *, pass_ks=ARC_PASS_KS, batch_size: int = 64, halt_threshold: float,
                     max_recursion_depth: Optional[int] = None, progress: bool = False,
                     **trajectory_options) -> ArcEvalResult:
    """Vote over every adapted task's test inputs under its adapted identifiers: pass@K where test outputs
    are known, and the submission of every adapted task."""
    a = params.adaptation
    inputs, pids = augmented_test_rows(dict(a.tasks), a.identifiers, {t: a.local_ids(t) for t in a.tasks})
    predict_fn = _adapted_predict_fn(params, halt_threshold, max_recursion_depth, trajectory_options)
    return evaluate_arc(predict_fn, inputs, pids, a.identifiers, dict(a.tasks), pass_ks=pass_ks,
                        batch_size=batch_size, progress=progress)


def infer_adapted_task(params, task_id: str, task: dict, *, halt_threshold: float,
                       max_recursion_depth: Optional[int] = None, **trajectory_options) -> list[dict]:
    """The attempts for an adapted task (found by `ArcAdaptation.find`): the vote over its adapted identifiers."""
    a = params.adaptation
    predict_fn = _adapted_predict_fn(params, halt_threshold, max_recursion_depth, trajectory_options)
    return vote_on_task(predict_fn, a.identifiers, a.local_ids(task_id), task_id, task)


def _adapted_predict_fn(params, halt_threshold, max_recursion_depth, trajectory_options: dict):
    """The run's model_predict_fn, asked through the adaptation's identifiers."""
    return params.adaptation.predict_fn(model_predict_fn(params.model, params.params, halt_threshold,
                                                         max_recursion_depth, **trajectory_options))
