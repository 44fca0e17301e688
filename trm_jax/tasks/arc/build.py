"""Build the ARC training and evaluation arrays once and cache them (memory-mapped .npy + manifest).

Official build_arc_dataset.py recipe:
- every task gets up to num_aug distinct augmentations (dihedral x colour permutation), each its own
  puzzle identifier (0 is the blank identifier; ids start at 1);
- training rows: all pairs of the training tasks, and the demonstration ("train") pairs of the
  evaluation tasks (transductive training); each pair is randomly translated inside the 30x30 canvas,
  except one pair per augmented puzzle that stays at the top-left corner;
- evaluation rows: the test pairs of the evaluation tasks under every augmentation, untranslated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from trm_jax.data.datasets import ArrayDataset
from trm_jax.errors import TRMError
from trm_jax.tasks.arc.augment import (Augmentation, augment_grid_batch, choose_augmentations, puzzle_identifier_name,
                                       task_rng)
from trm_jax.tasks.arc.encoding import ARC_SEQ_LEN, encode_grids
from trm_jax.tasks.arc.sources import ARC_MAX_GRID_SIZE, ARC_TASK_SETS, load_tasks

logger = logging.getLogger(__name__)

BUILD_VERSION = 1  # bump when the array layout or the recipe changes (invalidates caches)
ARC_NUM_AUG = 1000  # official build_arc_dataset.py default num_aug
ARC_LEAK_REFUSE_TASKS = 10  # more evaluation tasks than this duplicated in training data: refused
_STREAM_AUG, _STREAM_TRANSLATE = 0, 1
_ARRAYS = ("inputs", "labels", "puzzle_ids")


@dataclass
class ArcBuild:
    """A built (or cached) ARC dataset. Arrays are read-only memory maps; labels use 0 for pad (ignored).

    identifiers[i] names puzzle identifier i ("<blank>" at 0); eval_tasks are the evaluation tasks the
    eval rows come from, with their test outputs when known (for voting and scoring).
    """

    path: str
    manifest: dict
    train_inputs: np.ndarray
    train_labels: np.ndarray
    train_puzzle_ids: np.ndarray
    eval_inputs: np.ndarray
    eval_labels: np.ndarray
    eval_puzzle_ids: np.ndarray
    identifiers: list
    eval_tasks: dict

    @property
    def num_puzzle_identifiers(self) -> int:
        return len(self.identifiers)


def parse_source(spec: str, default_split: str) -> tuple[str, str]:
    """"arc-agi-1", "arc-agi-2:evaluation", "/path/to/concept" -> (source, split)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in ARC_TASK_SETS and head:
        return head, tail
    return spec, default_split


def _to_np(grid) -> np.ndarray:
    return np.asarray(grid, np.uint8)


def _pair_key(inp, out) -> str:
    return hashlib.sha256(json.dumps([inp, out]).encode()).hexdigest()


def _check_eval_leak(train_sets, eval_source, eval_tasks, allow_eval_leak: bool):
    if allow_eval_leak:
        return
    if eval_source[0] == "arc-agi-1" and any(s == ("arc-agi-2", "training") for s, _ in train_sets):
        raise TRMError("ARC-AGI-2 training data contains ARC-AGI-1 evaluation tasks (official README): do not "
                       "train on arc-agi-2 training with arc-agi-1 evaluation; drop it from the training sources "
                       "or pass allow_eval_leak (data.arc_allow_eval_leak=true) to force it")
    # Evaluation tasks whose every pair is in the training data. ARC-AGI-1 itself has one (training
    # 40853293 == evaluation 070dd51e) and the official builder keeps it: a few are a warning; more than
    # ARC_LEAK_REFUSE_TASKS is a systematic overlap (another release's training set) and is refused.
    eval_whole = {frozenset(_pair_key(e["input"], e["output"]) for e in task["train"] + task["test"]
                            if "output" in e): tid for tid, task in eval_tasks.items()}
    leaked = {}
    for (source, split), tasks in train_sets:
        for tid, task in tasks.items():
            keys = frozenset(_pair_key(e["input"], e["output"]) for e in task["train"] + task["test"] if "output" in e)
            if keys in eval_whole:
                leaked[eval_whole[keys]] = f"{source}:{split} {tid}"
    if not leaked:
        return
    listing = ", ".join(f"{e} (= {t})" for e, t in sorted(leaked.items())[:5]) + (", ..." if len(leaked) > 5 else "")
    if len(leaked) > ARC_LEAK_REFUSE_TASKS:
        raise TRMError(f"{len(leaked)} evaluation tasks of {eval_source[0]}:{eval_source[1]} are also training "
                       f"tasks ({listing}): scores would be inflated; remove that training source or pass "
                       "allow_eval_leak (data.arc_allow_eval_leak=true) to force it")
    logger.warning("ARC: %d evaluation task(s) duplicate a training task: %s; kept, as the official builder does",
                   len(leaked), listing)


def _limit(tasks: dict, max_tasks: Optional[int]) -> dict:
    if max_tasks is None:
        return tasks
    return dict(list(tasks.items())[:max_tasks])


def eval_task_pairs(task: dict):
    """(all pairs for augmentation, demonstration pairs, test pairs) of an evaluation task, as grids: its
    demonstrations are training rows, its test inputs evaluation rows (a test output may be None)."""
    demos = [(_to_np(e["input"]), _to_np(e["output"])) for e in task["train"]]
    # a test pair without a known output is encoded with an all-pad label (ignored; official fills [[0]])
    tests = [(_to_np(e["input"]), _to_np(e["output"]) if "output" in e else None) for e in task["test"]]
    return demos + [(i, o) for i, o in tests if o is not None], demos, tests


def _puzzles(train_sets, eval_tasks):
    """[(task_id, all pairs for augmentation, train-split pairs, eval-split pairs)] in identifier order."""
    out, seen = [], set()
    for (source, split), tasks in train_sets:
        for tid, task in tasks.items():
            if tid in seen:
                raise TRMError(f"task id {tid!r} appears in two ARC sources ({source}:{split} and an earlier one); "
                               "give each task one source")
            seen.add(tid)
            pairs = [(_to_np(e["input"]), _to_np(e["output"])) for e in task["train"] + task["test"]]
            out.append((tid, pairs, pairs, []))
    for tid, task in eval_tasks.items():
        if tid in seen:
            raise TRMError(f"evaluation task {tid!r} is also a training task; remove it from the training sources")
        out.append((tid, *eval_task_pairs(task)))
    return out


def task_augmentations(task_id: str, aug_pairs, num_aug: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(transform ids int64 [1 + A], colour maps uint8 [1 + A, 10]) of a task's puzzle identifiers: the
    original first, then its A <= num_aug distinct augmentations drawn from the task's own generator."""
    t, m = choose_augmentations(aug_pairs, num_aug, task_rng(seed, task_id, _STREAM_AUG)) if num_aug > 0 else \
        (np.zeros(0, np.int8), np.zeros((0, 10), np.uint8))
    if num_aug > 0 and len(t) < num_aug:
        logger.info("ARC task %s: only %d distinct augmentations of %d", task_id, len(t), num_aug)
    return np.concatenate([[0], t]).astype(np.int64), np.concatenate([np.arange(10, dtype=np.uint8)[None], m])


def augmentation_names(task_id: str, tids: np.ndarray, maps: np.ndarray) -> list[str]:
    """The puzzle-identifier names of a task's augmentations (see puzzle_identifier_name)."""
    return [puzzle_identifier_name(task_id, Augmentation(int(a), tuple(int(c) for c in mp)))
            for a, mp in zip(tids, maps)]


def translation_rng(seed: int, task_id: str) -> np.random.Generator:
    """The generator of a task's translations: its training pairs draw first, then its evaluation pairs."""
    return task_rng(seed, task_id, _STREAM_TRANSLATE)


def encode_task_pairs(puzzle_pairs, tids, maps, out_arrays, row0: int, ids0: int, translate: bool, rng):
    """Write one task's pairs under all its augmentations into `out_arrays` (inputs, labels, puzzle_ids) from
    row `row0`, its identifiers from `ids0`; rows ordered augmentation-major. With `translate`, each pair
    is placed at a random offset on the 30x30 canvas, one pair per augmentation kept at the origin."""
    num_aug, num_pairs = len(tids), len(puzzle_pairs)
    inputs, labels, pids = out_arrays
    pids[row0: row0 + num_aug * num_pairs] = np.repeat(ids0 + np.arange(num_aug, dtype=np.int32), num_pairs)
    keep_at_origin = rng.integers(0, num_pairs, size=num_aug) if translate else None
    for e, (inp, out) in enumerate(puzzle_pairs):
        in_groups = augment_grid_batch(inp, tids, maps)
        out_groups = augment_grid_batch(out, tids, maps) if out is not None else [(s, None) for s, _ in in_groups]
        for (sel, gi), (_, go) in zip(in_groups, out_groups):
            rows = row0 + sel * num_pairs + e
            if translate:
                h = max(gi.shape[1], go.shape[1])
                w = max(gi.shape[2], go.shape[2])
                pr = rng.integers(0, ARC_MAX_GRID_SIZE - h + 1, size=len(sel))
                pc = rng.integers(0, ARC_MAX_GRID_SIZE - w + 1, size=len(sel))
                origin = keep_at_origin[sel] == e
                pr[origin] = 0
                pc[origin] = 0
            else:
                pr = pc = None
            inputs[rows] = encode_grids(gi, pr, pc)
            labels[rows] = encode_grids(go, pr, pc) if go is not None else 0


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, dynamic_ncols=True, mininterval=1.0)


def _write_build(path: str, puzzles, num_aug: int, seed: int, progress: bool, manifest: dict):
    bar = _progress(2 * len(puzzles), "ARC augment+encode", progress)
    plans = []
    identifiers = ["<blank>"]  # official: identifier 0 is the blank one
    n_train = n_eval = 0
    for tid, aug_pairs, train_pairs, eval_pairs in puzzles:
        tids, maps = task_augmentations(tid, aug_pairs, num_aug, seed)
        plans.append((tids, maps, len(identifiers)))
        identifiers.extend(augmentation_names(tid, tids, maps))
        n_train += len(tids) * len(train_pairs)
        n_eval += len(tids) * len(eval_pairs)
        if bar is not None:
            bar.update(1)

    def alloc(split, n):
        mk = np.lib.format.open_memmap
        return (mk(os.path.join(path, f"{split}_inputs.npy"), "w+", np.uint8, (n, ARC_SEQ_LEN)),
                mk(os.path.join(path, f"{split}_labels.npy"), "w+", np.uint8, (n, ARC_SEQ_LEN)),
                mk(os.path.join(path, f"{split}_puzzle_ids.npy"), "w+", np.int32, (n,)))

    train_arrays, eval_arrays = alloc("train", n_train), alloc("eval", n_eval)
    r_train = r_eval = 0
    for (tid, _, train_pairs, eval_pairs), (tids, maps, ids0) in zip(puzzles, plans):
        rng = translation_rng(seed, tid)
        if train_pairs:
            encode_task_pairs(train_pairs, tids, maps, train_arrays, r_train, ids0, True, rng)
            r_train += len(tids) * len(train_pairs)
        if eval_pairs:
            encode_task_pairs(eval_pairs, tids, maps, eval_arrays, r_eval, ids0, False, rng)
            r_eval += len(tids) * len(eval_pairs)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for arr in train_arrays + eval_arrays:
        arr.flush()
    del train_arrays, eval_arrays
    with open(os.path.join(path, "identifiers.json"), "w") as f:
        json.dump(identifiers, f)
    manifest.update(num_train_rows=n_train, num_eval_rows=n_eval, num_puzzle_identifiers=len(identifiers))


def _load_build(path: str) -> ArcBuild:
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(path, "identifiers.json")) as f:
        identifiers = json.load(f)
    with open(os.path.join(path, "eval_tasks.json")) as f:
        eval_tasks = json.load(f)
    arrays = {f"{s}_{k}": np.load(os.path.join(path, f"{s}_{k}.npy"), mmap_mode="r", allow_pickle=False)
              for s in ("train", "eval") for k in _ARRAYS}
    return ArcBuild(path=path, manifest=manifest, identifiers=identifiers, eval_tasks=eval_tasks, **arrays)


def build_arc(source: str = "arc-agi-1", num_aug: int = ARC_NUM_AUG, seed: int = 0,
              extra_train_sources: Sequence[str] = (), eval_split: str = "evaluation",
              max_tasks: Optional[int] = None, allow_eval_leak: bool = False,
              cache_dir: Optional[str] = None, progress: bool = True) -> ArcBuild:
    """Build (or load from cache) the ARC arrays for `source`.

    Training tasks: `source:training` plus `extra_train_sources` ("arc-agi-2", "path", "path:evaluation", ...);
    evaluation tasks: `source:<eval_split>`. max_tasks keeps the first tasks (by id) of each source (small
    tests). The cache lives in `<cache_dir>/arc/<key>/`, key = hash of the task contents and the settings.
    """
    if num_aug < 0:
        raise TRMError(f"ARC num_aug must be >= 0, got {num_aug}")
    if max_tasks is not None and max_tasks < 1:
        raise TRMError(f"ARC max_tasks must be >= 1 or null, got {max_tasks}")
    train_specs = [(source, "training")] + [parse_source(s, "training") for s in extra_train_sources]
    eval_spec = (source, eval_split)
    train_sets = [(spec, _limit(load_tasks(*spec), max_tasks)) for spec in train_specs]
    eval_tasks = _limit(load_tasks(*eval_spec), max_tasks)
    _check_eval_leak(train_sets, eval_spec, eval_tasks, allow_eval_leak)

    content = json.dumps([[list(spec), tasks] for spec, tasks in train_sets] + [[list(eval_spec), eval_tasks]],
                         sort_keys=True).encode()
    settings = {"build_version": BUILD_VERSION, "num_aug": num_aug, "seed": seed,
                "train_sources": [list(s) for s in train_specs], "eval_source": list(eval_spec),
                "max_tasks": max_tasks, "allow_eval_leak": allow_eval_leak}
    source_hash = hashlib.sha256(content).hexdigest()
    key = hashlib.sha256((source_hash + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:20]
    root = os.path.join(os.path.expanduser(cache_dir or os.path.join("~", ".cache", "trm_jax")), "arc")
    path = os.path.join(root, key)
    manifest_path = os.path.join(path, "manifest.json")
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            cached = json.load(f)
        if cached.get("source_hash") == source_hash and cached.get("settings") == settings:
            logger.info("ARC data: using the cache at %s", path)
            return _load_build(path)
        shutil.rmtree(path)

    os.makedirs(root, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    start = time.perf_counter()
    manifest = {"source_hash": source_hash, "settings": settings}
    try:
        _write_build(tmp, _puzzles(train_sets, eval_tasks), num_aug, seed, progress, manifest)
        with open(os.path.join(tmp, "eval_tasks.json"), "w") as f:
            json.dump(eval_tasks, f)
        manifest["build_seconds"] = round(time.perf_counter() - start, 2)
        manifest["bytes"] = sum(os.path.getsize(os.path.join(tmp, n)) for n in os.listdir(tmp))
        with open(os.path.join(tmp, "manifest.json"), "w") as f:  # written last: marks a complete build
            json.dump(manifest, f, indent=1)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("ARC data built in %.1fs at %s (%d train rows, %d eval rows, %d identifiers)",
                manifest["build_seconds"], path, manifest["num_train_rows"], manifest["num_eval_rows"],
                manifest["num_puzzle_identifiers"])
    return _load_build(path)


def arc_datasets(build: ArcBuild):
    """(train ArrayDataset, eval ArrayDataset) of a build: uint8 memory maps (read rows with
    `ArrayDataset.rows`, which masks pad labels), puzzle_ids int32."""

    def dataset(inputs, labels, pids):
        # memory maps stay mapped; stored label 0 (pad) is masked (official ignore_label_id 0)
        return ArrayDataset(inputs=inputs, labels=labels, difficulty=np.zeros(len(inputs), np.float32),
                            puzzle_ids=pids, ignore_label_id=0)

    return (dataset(build.train_inputs, build.train_labels, build.train_puzzle_ids),
            dataset(build.eval_inputs, build.eval_labels, build.eval_puzzle_ids))


def build_arc_datasets(source: str = "arc-agi-1", num_aug: int = ARC_NUM_AUG, seed: int = 0,
                       extra_train_sources: Sequence[str] = (), eval_split: str = "evaluation",
                       max_tasks: Optional[int] = None, allow_eval_leak: bool = False,
                       cache_dir: Optional[str] = None, progress: bool = True):
    """`arc_datasets(build_arc(...))`; see build_arc."""
    return arc_datasets(build_arc(source, num_aug, seed, extra_train_sources, eval_split, max_tasks, allow_eval_leak,
                                  cache_dir, progress))
