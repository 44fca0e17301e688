"""ARC-AGI evaluation: predictions on every augmented test input are mapped back through the inverse
augmentation, voted on per test input (count, then mean halt probability; official evaluators/arc.py),
scored as pass@K and written in the Kaggle submission format.

Model-agnostic: `evaluate_arc` takes `predict_fn(inputs int32 [B, 900], puzzle_ids int32 [B]) ->
(tokens [B, 900], halt_prob [B])`, or K candidates per row (tokens [K, B, 900], halt_prob [K, B]), each
of which joins the vote (test-time trajectories, see `model_predict_fn`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from trm_jax.errors import TRMError
from trm_jax.models import NO_EARLY_HALT, predict, predict_trajectories
from trm_jax.models.predict import power_of_two_at_least
from trm_jax.models.trajectories import check_options, indexed_keys
from trm_jax.tasks.arc.augment import Augmentation, parse_puzzle_identifier, puzzle_identifier_name
from trm_jax.tasks.arc.build import encode_grids, load_tasks
from trm_jax.tasks.arc.encoding import ARC_MAX_GRID_SIZE, COLOUR_OFFSET, crop_sizes, grid_hash
from trm_jax.tasks.arc.sources import validate_task

logger = logging.getLogger(__name__)

ARC_PASS_KS = (1, 2, 5, 10, 100, 1000)  # official evaluators/arc.py pass_Ks
ARC_SUBMISSION_ATTEMPTS = 2  # official submission_K; the ARC Prize metric allows 2 attempts


@dataclass
class ArcEvalResult:
    metrics: dict  # {"pass@1": ..., "pass@2": ..., ...}
    submission: dict  # Kaggle format {task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}
    ranked: dict = field(repr=False, default_factory=dict)  # {task_id: [[(grid, count, mean_halt_prob), ...] per test input]}


def _decoded_grids(tokens: np.ndarray) -> list[np.ndarray]:
    tokens = np.asarray(tokens)
    rows, cols = crop_sizes(tokens)
    g = tokens.reshape(-1, ARC_MAX_GRID_SIZE, ARC_MAX_GRID_SIZE)
    return [(g[i, : rows[i], : cols[i]] - COLOUR_OFFSET).astype(np.uint8) for i in range(len(g))]


class ArcVoter:
    """Accumulates predictions (per original task and test input) and ranks the candidates."""

    def __init__(self, identifiers: Sequence[str]):
        self.identifiers = list(identifiers)
        self.votes: dict[str, dict[str, dict[str, list]]] = {}  # task -> input hash -> pred hash -> [count, sum q]
        self.grids: dict[str, np.ndarray] = {}

    def add(self, inputs: np.ndarray, puzzle_ids: np.ndarray, pred_tokens: np.ndarray, halt_prob: np.ndarray):
        puzzle_ids = np.asarray(puzzle_ids).reshape(-1)
        halt_prob = np.asarray(halt_prob, np.float64).reshape(-1)
        for pid, inp, pred, q in zip(puzzle_ids, _decoded_grids(inputs), _decoded_grids(pred_tokens), halt_prob):
            if pid == 0:  # blank identifier: padding rows (official blank_identifier_id)
                continue
            if not 0 < pid < len(self.identifiers):
                raise TRMError(f"puzzle id {int(pid)} is outside the {len(self.identifiers)} ARC identifiers; "
                               "evaluate with the identifiers of the build the rows came from")
            task_id, aug = parse_puzzle_identifier(self.identifiers[pid])
            input_hash = grid_hash(aug.invert(inp))
            grid = aug.invert(pred)
            h = grid_hash(grid)
            self.grids[h] = grid
            entry = self.votes.setdefault(task_id, {}).setdefault(input_hash, {}).setdefault(h, [0, 0.0])
            entry[0] += 1
            entry[1] += float(q)

    def ranked(self, task_id: str, test_input) -> list[tuple[np.ndarray, int, float]]:
        """Candidates for one test input, best first: by vote count, ties by mean halt probability."""
        cands = self.votes.get(task_id, {}).get(grid_hash(np.asarray(test_input, np.uint8)), {})
        stats = [(h, c, s / c) for h, (c, s) in cands.items()]
        stats.sort(key=lambda t: (t[1], t[2]), reverse=True)
        return [(self.grids[h], c, q) for h, c, q in stats]


def _as_list(grid):
    return grid.tolist() if isinstance(grid, np.ndarray) else grid


def pass_at_k(ranked: dict, tasks: dict, pass_ks: Sequence[int] = ARC_PASS_KS) -> dict:
    """pass@K: per task the fraction of test inputs whose output is among the top K candidates, averaged
    over tasks (official evaluators/arc.py). ranked: {task_id: [[grid, ...] per test input]}."""
    totals = {k: 0.0 for k in pass_ks}
    scored = 0
    for tid, task in tasks.items():
        tests = task["test"]
        if any("output" not in t for t in tests):
            raise TRMError(f"ARC task {tid!r} has a test input without a known output; pass@K needs them")
        scored += 1
        cands = ranked.get(tid, [[] for _ in tests])
        for k in pass_ks:
            ok = sum(any(g is not None and _as_list(g) == t["output"] for g in c[:k]) for c, t in zip(cands, tests))
            totals[k] += ok / len(tests)
    return {f"pass@{k}": (totals[k] / scored if scored else 0.0) for k in pass_ks}


def make_submission(ranked: dict, tasks: dict, attempts: int = ARC_SUBMISSION_ATTEMPTS) -> dict:
    """Kaggle format: one {"attempt_1": grid, ...} per test input, in order; fewer candidates than attempts
    repeat the first (official); no candidate at all gives [[0]] so entries stay aligned with the inputs."""
    sub = {}
    for tid, task in tasks.items():
        entries = []
        for i in range(len(task["test"])):
            # an empty decoded grid (no colour at the top-left) is not a valid attempt: [[0]] instead
            grids = [np.asarray(g).tolist() if np.asarray(g).size else [[0]]
                     for g in ranked.get(tid, [[]] * len(task["test"]))[i][:attempts]]
            if not grids:
                grids = [[[0]]]
            grids += [grids[0]] * (attempts - len(grids))
            entries.append({f"attempt_{j + 1}": g for j, g in enumerate(grids)})
        sub[tid] = entries
    return sub


def write_submission(submission: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(submission, f)
    return path


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def evaluate_arc(predict_fn: Callable, inputs: np.ndarray, puzzle_ids: np.ndarray, identifiers: Sequence[str],
                 tasks: dict, pass_ks: Sequence[int] = ARC_PASS_KS, batch_size: int = 256,
                 attempts: int = ARC_SUBMISSION_ATTEMPTS, progress: bool = False) -> ArcEvalResult:
    """Predict every (augmented) evaluation row, vote, and score; see the module docstring for predict_fn.

    inputs/puzzle_ids: the eval rows (`ArcBuild.eval_inputs`, `.eval_puzzle_ids`); identifiers and tasks:
    `ArcBuild.identifiers`, `ArcBuild.eval_tasks`. The last batch is padded to batch_size with blank rows
    (puzzle id 0), so predict_fn always sees one shape.
    """
    inputs = np.asarray(inputs)
    puzzle_ids = np.asarray(puzzle_ids, np.int32)
    if batch_size < 1:
        raise TRMError(f"ARC evaluation batch_size must be >= 1, got {batch_size}")
    voter = ArcVoter(identifiers)
    bar = None
    if progress:
        bar = tqdm(total=len(inputs), desc="ARC eval", dynamic_ncols=True, mininterval=1.0)
    for start, stop in _batches(len(inputs), batch_size):
        x = np.asarray(inputs[start:stop], np.int32)
        p = puzzle_ids[start:stop]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.repeat(x[:1], batch_size - n, 0)])
            p = np.concatenate([p, np.zeros(batch_size - n, np.int32)])
        tokens, halt = predict_fn(x, p)
        tokens, halt = np.asarray(tokens), np.asarray(halt)
        if tokens.shape == x.shape:  # one candidate per row
            tokens, halt = tokens[None], halt.reshape(1, -1)
        if tokens.shape[1:] != x.shape or halt.shape != tokens.shape[:2]:
            raise TRMError(f"predict_fn must return tokens {x.shape} and halt_prob ({len(x)},), or K candidates "
                           f"per row (tokens (K, *{x.shape}), halt_prob (K, {len(x)})), got {tokens.shape} and "
                           f"{halt.shape}")
        for candidate, q in zip(tokens, halt):
            voter.add(x[:n], p[:n], candidate[:n], q[:n])
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    ranked_full = {tid: [voter.ranked(tid, t["input"]) for t in task["test"]] for tid, task in tasks.items()}
    ranked = {tid: [[g for g, _, _ in c] for c in cs] for tid, cs in ranked_full.items()}
    known = {tid: t for tid, t in tasks.items() if all("output" in x for x in t["test"])}
    metrics = pass_at_k(ranked, known, pass_ks) if known else {}
    return ArcEvalResult(metrics=metrics, submission=make_submission(ranked, tasks, attempts), ranked=ranked_full)


def evaluate_arc_build(predict_fn: Callable, build, **kwargs) -> ArcEvalResult:
    """evaluate_arc on an `ArcBuild` (trm_jax.tasks.arc.build_arc)."""
    return evaluate_arc(predict_fn, build.eval_inputs, build.eval_puzzle_ids, build.identifiers,
                        build.eval_tasks, **kwargs)


def _check_grid(grid, where: str):
    if not isinstance(grid, list) or not all(isinstance(r, list) for r in grid):  # [] is allowed (never right)
        raise TRMError(f"submission {where}: an attempt must be a grid (list of lists of colours), got "
                       f"{str(grid)[:40]!r}")


def score_arc_submission(submission, tasks: dict, attempts: int = ARC_SUBMISSION_ATTEMPTS) -> dict:
    """Score any Kaggle-format submission (dict or JSON path) against tasks with known test outputs.

    Returns {"pass@1": ..., ..., f"pass@{attempts}": ...}: per task the fraction of its test inputs whose
    output equals one of the first k attempts, averaged over all tasks (a task missing from the
    submission scores 0). Extra tasks in the submission are ignored.
    """
    if isinstance(submission, (str, os.PathLike)):
        try:
            with open(submission) as f:
                submission = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise TRMError(f"cannot read the ARC submission {submission}: {e}") from None
    if not isinstance(submission, dict):
        raise TRMError("an ARC submission must be an object {task_id: [{\"attempt_1\": grid, ...}, ...]}")
    if not tasks:
        raise TRMError("score_arc_submission needs at least one task with known test outputs")
    ranked = {}
    for tid, task in tasks.items():
        if tid not in submission:
            continue
        entries = submission[tid]
        if not isinstance(entries, list) or len(entries) != len(task["test"]):
            raise TRMError(f"submission task {tid!r}: expected a list of {len(task['test'])} entries (one per test "
                           f"input, in order), got {str(entries)[:60]!r}")
        cands = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise TRMError(f"submission task {tid!r} entry {i}: expected {{\"attempt_1\": grid, ...}}")
            grids = []
            for j in range(1, attempts + 1):
                g = entry.get(f"attempt_{j}")  # a missing attempt stays None: it never matches
                if g is not None:
                    _check_grid(g, f"task {tid!r} entry {i} attempt_{j}")
                grids.append(g)
            cands.append(grids)
        ranked[tid] = cands
    return pass_at_k(ranked, tasks, range(1, attempts + 1))


def model_predict_fn(model, params, halt_threshold: float = NO_EARLY_HALT,
                     max_recursion_depth: Optional[int] = None, *, trajectories: int = 1,
                     noise_std: Optional[float] = None, select: str = "halt", seed: int = 0):
    """predict_fn for a trm_jax TinyRecursiveModel: tokens and the final sigmoid(halt logit).

    The default NO_EARLY_HALT never halts early: every sample runs max_recursion_depth supervision
    steps, as the official evaluation does; its halt probability then ranks ties in the vote.

    With `trajectories=K` each row runs K noisy trajectories (predict's options). `select="halt"`: the
    trajectory the halting head rates highest is the row's candidate; `select="vote"`: all K answers join
    the augmentation vote (the vote over augmentations is then also the vote over trajectories). Row i of
    the evaluation (counted over the calls of this predict_fn) has the noise key `fold_in(key(seed), i)`.
    """
    noise_std = check_options(trajectories, noise_std, select)
    rows_seen = [0]

    def predict_fn(inputs, puzzle_ids):
        inputs, puzzle_ids = np.asarray(inputs, np.int32), np.asarray(puzzle_ids, np.int32)
        keys = None
        if noise_std is not None:
            keys = indexed_keys(seed, np.arange(rows_seen[0], rows_seen[0] + len(inputs)))
            rows_seen[0] += len(inputs)
        options = dict(halt_threshold=halt_threshold, max_recursion_depth=max_recursion_depth,
                       trajectories=trajectories, noise_std=noise_std, rng=keys)
        if select == "vote" and trajectories > 1:
            every = predict_trajectories(model, params, inputs, puzzle_ids=puzzle_ids, **options)
            return np.asarray(every.tokens), np.asarray(jax.nn.sigmoid(every.halt_logit))
        pred = predict(model, params, inputs, puzzle_ids=puzzle_ids, select=select, **options)
        return np.asarray(pred.tokens), np.asarray(pred.halt_prob)

    return predict_fn


def read_task(task) -> dict:
    """A task given as a dict, a JSON string or the path of a task JSON file, validated."""
    origin = "task"
    if isinstance(task, (str, os.PathLike)):
        text = os.fspath(task)
        if not text.lstrip().startswith("{"):
            if not os.path.isfile(text):
                raise TRMError(f"ARC infer: {text!r} is neither task JSON nor an existing task file")
            origin = text
            with open(text) as f:
                text = f.read()
        try:
            task = json.loads(text)
        except json.JSONDecodeError as e:
            raise TRMError(f"ARC infer: {origin} is not valid JSON ({e})") from None
    return validate_task("task", task, origin)


def demo_key(task: dict) -> str:
    return json.dumps([[ex["input"], ex["output"]] for ex in task["train"]])


def task_identifiers(build, task: dict) -> tuple[Optional[str], list[int]]:
    """(task id, its puzzle identifiers) of the build's task with the same demonstration pairs."""
    key = demo_key(task)
    task_id = next((tid for tid, t in build.eval_tasks.items() if demo_key(t) == key), None)
    if task_id is None:
        for source, split in build.manifest["settings"]["train_sources"]:
            # a training task's identifiers cover its demonstrations (its test pairs are training data too)
            task_id = next((tid for tid, t in load_tasks(source, split).items() if demo_key(t) == key), None)
            if task_id is not None:
                break
    if task_id is None:
        return None, []
    return task_id, [i for i, name in enumerate(build.identifiers) if parse_puzzle_identifier(name)[0] == task_id]


def infer_arc_task(model, params, build, task, *, halt_threshold: float = NO_EARLY_HALT,
                   max_recursion_depth: Optional[int] = None, batch_size: int = 64,
                   attempts: int = ARC_SUBMISSION_ATTEMPTS, **trajectory_options) -> list[dict]:
    """`[{"attempt_1": grid, "attempt_2": grid}, ...]`, one entry per test input of `task` (a dict, JSON
    text or a task file), as in the Kaggle submission.

    The task is found in `build` (the run's training data) by its demonstration pairs; every augmentation
    of it the run trained an identifier for predicts each test input, and the answers vote as in
    `evaluate_arc`. A task the run never saw has no trained puzzle embedding: it is predicted with the
    blank identifier under the 8 dihedral transforms, with a warning (TRM is transductive).
    `trajectory_options` (trajectories, noise_std, select, seed): see `model_predict_fn`.
    """
    task = read_task(task)
    task_id, ids = task_identifiers(build, task)
    predict_fn = model_predict_fn(model, params, halt_threshold, max_recursion_depth, **trajectory_options)
    identifiers = build.identifiers
    if task_id is None:
        logger.warning(
            "ARC infer: this task is not in the run's training data, so it has no trained puzzle embedding; "
            "predicting with the blank identifier (expect poor answers; adapt the run to the task first: "
            "trm_jax.adapt or scripts/adapt.py)")
        task_id = "task"
        identifiers = ["<blank>"] + [puzzle_identifier_name(task_id, Augmentation(t, tuple(range(10))))
                                     for t in range(8)]
        ids = list(range(1, 9))
        model_fn = predict_fn
        predict_fn = lambda x, p: model_fn(x, np.zeros_like(p))  # noqa: E731  (every row: the blank identifier)
    return vote_on_task(predict_fn, identifiers, ids, task_id, task, batch_size=batch_size, attempts=attempts)


def augmented_test_rows(tasks: dict, identifiers: Sequence[str], task_ids: dict) -> tuple[np.ndarray, np.ndarray]:
    """(inputs uint8 [R, 900], puzzle ids int32 [R]): every test input of `tasks` under the augmentation of
    each of its task's puzzle identifiers (`task_ids[task_id]`, indices into `identifiers`), untranslated."""
    rows, pids = [], []
    for tid, task in tasks.items():
        for ex in task["test"]:
            grid = np.asarray(ex["input"], np.uint8)
            for i in task_ids[tid]:
                rows.append(encode_grids(parse_puzzle_identifier(identifiers[i])[1].apply(grid)[None])[0])
                pids.append(i)
    return np.stack(rows), np.asarray(pids, np.int32)


def vote_on_task(predict_fn: Callable, identifiers: Sequence[str], ids: Sequence[int], task_id: str, task: dict, *,
                 batch_size: int = 64, attempts: int = ARC_SUBMISSION_ATTEMPTS) -> list[dict]:
    """The attempts per test input of one task, voting over the predictions of its identifiers `ids`."""
    rows, pids = augmented_test_rows({task_id: task}, identifiers, {task_id: ids})
    batch_size = min(batch_size, power_of_two_at_least(len(rows)))  # a small task is not padded to a big batch
    result = evaluate_arc(predict_fn, rows, pids, identifiers, {task_id: task}, pass_ks=(), batch_size=batch_size,
                          attempts=attempts)
    return result.submission[task_id]
