"""Accuracy summaries (exact, token, recursion depth) of training windows and held-out data, and the eval loop.

One summary, `accuracy_summary`, turns sums into exact_accuracy, token_accuracy and recursion_depth: the
train step's window metrics (`summarize`), the Trainer's held-out evaluation (`held_out_metrics`),
`trm_jax.evaluation` and the scripts all report it. The per-sample counts it sums come from
`trm_jax.models.token_matches` (the one accuracy definition), through the train step's loss and the eval step.
Held-out results add how many answers settled (`settle_summary`) and, with a task's verifier, how many it
accepts.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from trm_jax.data.iterators import eval_batches
from trm_jax.errors import TRMError
from trm_jax.models import TinyRecursiveModel, predict
from trm_jax.models.predict import check_halting
from trm_jax.models.trajectories import check_options, verify_trajectories
from trm_jax.training import distributed as dist
from trm_jax.training.step import eval_metrics, eval_step_inputs, make_eval_step, pmap_eval_step

log = logging.getLogger(__name__)


def accuracy_summary(*, exact: float, token_correct: float, token_count: float, samples: float,
                     recursion_depth: float, finished: float) -> dict:
    """exact_accuracy (exact samples of `samples`), token_accuracy (correct of the scored tokens) and
    recursion_depth (mean supervision steps of the `finished` samples; NaN when none finished) from sums."""
    return dict(exact_accuracy=exact / max(samples, 1.0), token_accuracy=token_correct / max(token_count, 1.0),
                recursion_depth=recursion_depth / finished if finished else float("nan"))


def sample_summary(results: Mapping[str, np.ndarray], select: Optional[np.ndarray] = None) -> dict:
    """`accuracy_summary` and `settle_summary` of per-sample results (`evaluate_samples`), optionally of the
    rows `select`."""
    if select is not None:
        results = {k: results[k][select] for k in ("exact", "token_correct", "token_count", "recursion_depth",
                                                     "settled", "verified") if k in results}
    n = float(len(results["exact"]))
    total = {k: float(np.sum(results[k])) for k in ("exact", "token_correct", "token_count", "recursion_depth")}
    return dict(accuracy_summary(**total, samples=n, finished=n), **settle_summary(results))


def settle_summary(results: Mapping[str, np.ndarray]) -> dict:
    """From per-sample results with "settled" (the answer's trajectory stopped by its rule, settling or the
    halting head, rather than at the depth cap): settled_fraction and settled_exact_accuracy (exact accuracy
    of the settled answers; NaN when none settled). With "verified" (a task's verifier accepts the answer):
    verified_fraction and settled_verified_fraction (of the settled answers)."""
    out = {}
    settled = np.asarray(results["settled"], bool) if "settled" in results else None
    share = lambda a, rows: float(np.mean(a[rows])) if rows.any() else float("nan")  # noqa: E731
    if settled is not None:
        out.update(settled_fraction=float(np.mean(settled)) if settled.size else float("nan"),
                   settled_exact_accuracy=share(np.asarray(results["exact"], bool), settled))
    if "verified" in results:
        verified = np.asarray(results["verified"], bool)
        out["verified_fraction"] = float(np.mean(verified)) if verified.size else float("nan")
        if settled is not None:
            out["settled_verified_fraction"] = share(verified, settled)
    return out


def summarize(window: Iterable[Mapping[str, np.ndarray]]) -> dict:
    """Averages over a window of per-step metric sums (see step.SUM_KEYS).

    Loss parts and exact accuracy are per-sample means over every slot-step in the window; token
    accuracy is over tokens; recursion_depth is the mean step count of the samples that halted.
    """
    window = list(window)
    if not window:
        return {}
    tot = {k: float(np.sum([np.asarray(m[k], np.float64) for m in window])) for k in window[0]}
    n = max(tot["samples"], 1.0)
    accuracy = accuracy_summary(exact=tot["exact"], token_correct=tot["token_correct"], token_count=tot["token_count"],
                                samples=n, recursion_depth=tot["recursion_depth"], finished=tot["halted"])
    return dict(
        loss=tot["loss"] / n, ce=tot["ce"] / n, halt_loss=tot["halt_loss"] / n,
        token_accuracy=accuracy["token_accuracy"], exact_accuracy=accuracy["exact_accuracy"],
        recursion_depth=accuracy["recursion_depth"],
        halted_fraction=tot["halted"] / n,
        samples_per_step=tot["samples"] / len(window),  # the batch; smaller with training.halted_samples=drop
        difficulty=tot["difficulty"] / n,
        lr=float(np.asarray(window[-1]["lr"])),
        grad_norm=float(np.mean([np.asarray(m["grad_norm"], np.float64) for m in window])),
        nonfinite=int(np.asarray(window[-1]["nonfinite"])),
    )


def nonfinite_runs(window: Iterable[Mapping[str, np.ndarray]]) -> tuple[int, int]:
    """(updates skipped in the window, the longest run of consecutive skipped updates seen in it), from
    each step's `nonfinite` counter: a run of bad steps followed by a good one inside one window counts."""
    counts = [int(np.asarray(m["nonfinite"])) for m in window]
    return sum(c > 0 for c in counts), max(counts, default=0)


def evaluate_samples(model: TinyRecursiveModel, params, dataset, batch_size: int, *, halt_threshold=None,
                     max_recursion_depth=None, replicated: bool = False, trajectories: int = 1, noise_std=None,
                     select: str = "halt", seed: int = 0, eval_step: Optional[Callable] = None, halting=None,
                     settle_steps=None, verifier: Optional[Callable] = None) -> dict:
    """Per-sample held-out results of `params` on `dataset`, in dataset order, on this host's devices:
    exact, token_correct, token_count, recursion_depth, halt_prob, settled, tokens (predictions) and
    difficulty, and with `verifier` also verified.

    The one evaluation loop: `Trainer.evaluate` and `trm_jax.evaluation.evaluate` both use it.
    `replicated` says `params` are already on every local device (the Trainer's state). `trajectories`,
    `noise_std`, `select`, `halting` and `settle_steps` are predict's (halting None: the model's);
    sample i's trajectories are keyed by `fold_in(key(seed), i)` whatever the batch size and device count.
    `verifier` (a task's token verifier, `Task.verifier`) checks each chosen answer on the host after the
    loop, and with `select="verify"` chooses among the trajectories inside predict (then the batches run on
    one device: the choice needs the host). With several local devices the batches run through `eval_step`
    (`pmap_eval_step(make_eval_step(model, trajectories, select))`, built here when not given: a caller
    evaluating repeatedly passes the one it keeps, so it compiles once).

    The loop keeps no per-step state (predict's while_loop), so a depth cap in the thousands costs no more
    memory than the trained one.

    Raises:
        TRMError: A bad trajectory option, `halting` or `settle_steps`, or `select="verify"` without a verifier.
    """
    noise_std = check_options(trajectories, noise_std, select)
    if select == "verify" and verifier is None:
        raise TRMError("select='verify' needs the task's verifier (evaluate_samples(..., verifier=task.verifier("
                       "tokenizer))); tasks without one choose by select='halt', 'vote' or 'settled'")
    if halting is not None or settle_steps is not None:
        halting, settle_steps = check_halting(model, halting, settle_steps)
        if (halting, settle_steps) != (model.halting, model.settle_steps):
            model = model.clone(halting=halting, settle_steps=int(settle_steps))
            eval_step = None  # a caller's step was built for the model's own rule
    n_local = jax.local_device_count()
    threshold = jnp.float32(model.halt_threshold if halt_threshold is None else halt_threshold)
    depth = jnp.int32(model.max_recursion_depth if max_recursion_depth is None else max_recursion_depth)
    options = dict(trajectories=trajectories, select=select)
    if n_local == 1 or select == "verify":  # one device: predict compacts the batch as samples halt
        params = dist.unreplicate(params) if replicated else params
        chooser = verifier if select == "verify" else None
        run = lambda arrays: eval_metrics(predict(model, params, arrays["inputs"], puzzle_ids=arrays["puzzle_ids"],  # noqa: E731
                                                  halt_threshold=threshold, max_recursion_depth=depth,
                                                  noise_std=noise_std, rng=arrays.get("rng"), verifier=chooser,
                                                  **options), arrays)
    else:
        rep = params if replicated else dist.replicate(jax.device_get(params))
        step = eval_step or pmap_eval_step(make_eval_step(model, **options))
        run = lambda arrays: dist.unshard(step(rep, dist.shard(arrays), threshold, depth, noise_std))  # noqa: E731
    bs = -(-batch_size // n_local) * n_local
    outs, diff, valid, inputs = [], [], [], []
    for batch in eval_batches(dataset, bs):
        arrays = eval_step_inputs(batch, None if noise_std is None else seed)
        outs.append(jax.device_get(run(arrays)))
        diff.append(np.asarray(batch["difficulty"]))
        valid.append(arrays["valid"])
        inputs.append(arrays["inputs"])
    valid = np.concatenate(valid)
    out = {k: np.concatenate([np.asarray(o[k]) for o in outs])[valid] for k in outs[0]}
    out["difficulty"] = np.concatenate(diff)[valid]
    if verifier is not None:
        out["verified"] = verify_trajectories(verifier, np.concatenate(inputs)[valid], out["tokens"][None])[0]
    return out


def held_out_metrics(model: TinyRecursiveModel, params, dataset, batch_size: int, *, replicated: bool,
                     halt_threshold: Optional[float] = None, eval_step: Optional[Callable] = None, halting=None,
                     settle_steps=None) -> dict:
    """exact_accuracy, token_accuracy, recursion_depth (mean supervision steps), settled_fraction,
    settled_exact_accuracy (`settle_summary`) and num_samples of `params` on `dataset` (the model's
    predict, every sample on this host's devices, stopping by `halting` / `settle_steps` / `halt_threshold`,
    each by default the model's); {} without data. `replicated`: `params` are already on every local device
    (the trainer's state); `eval_step`: see `evaluate_samples`."""
    if dataset is None or len(dataset) == 0:
        return {}
    res = evaluate_samples(model, params, dataset, batch_size, replicated=replicated, halt_threshold=halt_threshold,
                           eval_step=eval_step, halting=halting, settle_steps=settle_steps)
    return dict(sample_summary(res), num_samples=len(res["exact"]))


def log_results(step: int, res: dict) -> None:
    log.info("eval @ step %d: exact %.4f, token %.4f, recursion depth %.2f, settled %.3f (%d samples, %.1fs)", step,
             res["exact_accuracy"], res["token_accuracy"], res["recursion_depth"],
             res.get("settled_fraction", float("nan")), res["num_samples"], res.get("eval_time_s", 0.0))
