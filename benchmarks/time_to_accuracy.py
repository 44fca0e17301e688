"""Time to accuracy: trm_jax's `Trainer` against the PyPI `tiny-recursive-model`'s own `Trainer`
(PyTorch), same architecture, same data, same hyperparameters, each for the same training-time budget.

    python scripts/benchmark.py time-to-accuracy                 # 300 s of training per framework
    python scripts/benchmark.py time-to-accuracy --quick         # tiny, about 20 s in all
    python scripts/benchmark.py time-to-accuracy --recipe fast   # trm_jax's final-step recipe vs PyTorch's own

Task: generated Sudoku puzzles with `--givens` givens (unique solution), one training and one
held-out set, the same arrays for both frameworks. Model: `TinyRecursiveModel` with an `MLPMixer1D`
network (dim, depth, num_latent_refinements, num_refinement_blocks) in each package.

What each side runs:
- trm_jax: `trm_jax.Trainer(model, (inputs, labels), eval_dataset=..., callbacks=[TimeBudget, HeldOutCurve])`:
  deep supervision over a fixed batch of slots (halted slots are refilled; `--halted-samples drop`:
  the PyPI schedule below, `training.halted_samples`), AdamW, EMA of the weights; `Trainer.evaluate`
  (EMA weights, the model's predict) for the held-out points.
- PyTorch: `tiny_recursive_model.Trainer(model, dataset, ...)()`: each batch runs up to
  `max_recurrent_steps` supervision steps, halted samples leave the batch; AdamW whose learning rate
  the trainer divides by `batch_size * max_recurrent_steps` (so it is given `learning_rate * batch * depth`),
  linear warmup, `ema_pytorch.EMA`; the held-out points predict with the EMA model.
With `--recipe fast`, best recipe against best recipe: PyTorch's side is unchanged, and trm_jax trains
with final-step supervision as configs/sudoku_fast.yaml does (`training.supervision: final`: T cycles per
sample, the gradient through the last and the answer update before it, `--fast-transition 1` =
`training.transition_grad_prob`), T growing over curriculum stages (`--fast-cycles 2,4,8
--fast-stage-steps 200,200`: T=2 for 200 steps, T=4 for 200, then T=8 until the budget ends), and
evaluates with settled halting (`model.halting: settled`, the same cap of `--max-recursion-depth`
supervision steps, of T cycles each): docs/final-step.md. Its halting head is not trained, so its
"halting 0.5" curve is the settled one.
Shared settings: AdamW betas (0.9, 0.999), eps 1e-8, learning rate after `--warmup-steps` linear
warmup constant, no gradient clipping, no halting exploration, EMA decay `--ema-decay`, halting at
sigmoid >= `--halt-threshold` or `--max-recursion-depth` supervision steps in training and in evaluation.
Not equal, by each package's design: the batch schedule (above); the EMA (trm_jax: every step, its
decay warmed up from 0 as min(decay, (1 + t) / (10 + t)), `training.ema_warmup`; ema_pytorch: copies
for 100 steps, then every 10 steps with a decay ramping up to `--ema-decay`, and every 10,000 steps
into the model; `--ema-decay 0` is no EMA in both); weight
decay (trm_jax: matrices and embeddings; PyTorch AdamW: every parameter); the initial weights
(each package's own initialisers and RNG); the loss is the batch mean (trm_jax) or sum (PyTorch),
which AdamW's update ignores but for its epsilon.

Timing: the clock runs from building the model and trainer (trm_jax's compilation counts) to the
budget, and stops for every held-out evaluation (every `--eval-every-s` seconds of training time).
trm_jax: the Trainer's callbacks, `TimeBudget(count_evaluations=False)` (stops the run at the budget
and asks for the final evaluation) and `HeldOutCurve` (evaluates when a point is due, after the steps
in flight finished: those count as training); the loop itself is the one users run, with no extra
wait on the device between points. PyTorch: the dataset's batch fetch ticks `TrainClock`, i.e.
between batches.
Data generation is outside the clock. Each framework trains in its own worker process on the same
`--threads` CPUs (PyTorch: `torch.set_num_threads`), one after the other, both with malloc on
transparent huge pages as trm_jax's scripts run (`--no-malloc-hugepages`: both without;
scripts/launcher.py). Run it on an otherwise
idle machine: PyTorch's OpenMP threads slow down many times over when other processes compete for
the CPUs (XLA's much less), so the load average before each run and each run's CPU seconds per
training second are printed.

Printed: both curves (training seconds, optimizer steps, exact accuracy = whole puzzle right, token
accuracy, mean recursion depth; and exact and token accuracy at full depth: the same weights with no
early halting, every sample running `--max-recursion-depth` steps, as the official code evaluates) and, for
exact and token accuracy (and exact at full depth), the training time each framework needed to reach
the PyTorch run's final value and the ratio trm_jax / PyTorch (goal <= 0.5; with `--recipe fast` <= 0.25).
The times are those of the first held-out point at or above the target, so their resolution is
`--eval-every-s`. No assertion on timing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
import time
from typing import Callable, Optional, Sequence

import numpy as np

from benchmarks.harness import (BenchConfig, add_config_arguments, add_malloc_hugepages_argument, config_from_args,
                                run_worker, worker_env)
from scripts.launcher import huge_pages_enabled
from trm_jax.models import NO_EARLY_HALT
from trm_jax.training import Callback, TimeBudget

TRAIN_WORKER = "benchmarks.time_to_accuracy:train_worker"
# architecture, data, hyperparameters and budget shared by both frameworks; Sudoku through the grid
# tokenizer (pad, blank, digits 1-9): 81 tokens of 11
DEFAULT = BenchConfig(dim=64, depth=2, seq_len=81, num_tokens=11, num_latent_refinements=2, num_refinement_blocks=2,
                      max_recursion_depth=12,  # the PyPI Trainer's max_recurrent_steps default
                      halt_threshold=0.5, batch_size=64, learning_rate=1e-3, warmup_steps=100, weight_decay=0.1,
                      ema_decay=0.999, givens=40, num_train=4096, num_eval=512, eval_batch_size=256, budget_s=300.0,
                      eval_every_s=30.0, threads=2, seed=0, halted_samples="refill")
QUICK = dataclasses.replace(DEFAULT, dim=32, depth=1, num_latent_refinements=1, max_recursion_depth=4, batch_size=16,
                            warmup_steps=10, num_train=256, num_eval=64, eval_batch_size=64, budget_s=3.0,
                            eval_every_s=1.0)
GOALS = {"same": 0.5, "fast": 0.25}  # the ratio trm_jax / PyTorch each comparison aims at
RECIPES = tuple(GOALS)  # the same recipe on both sides, or trm_jax's final-step recipe against PyTorch's own
# --recipe fast: trm_jax's T doubles as in configs/sudoku_fast.yaml (2 -> 4 -> 8), the last until the budget ends
FAST_CYCLES = (2, 4, 8)
FAST_STAGE_STEPS = (200, 200)
FAST_TRANSITION = 1.0  # as configs/sudoku_fast.yaml
OPTIONS = ("budget_s", "eval_every_s", "dim", "depth", "num_latent_refinements", "num_refinement_blocks",
           "max_recursion_depth", "halt_threshold", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
           "ema_decay", "givens", "num_train", "num_eval", "threads", "seed", "halted_samples")


def label(cfg: BenchConfig) -> str:
    return (f"{cfg.label()} max_recursion_depth={cfg.max_recursion_depth} lr={cfg.learning_rate:g} "
            f"wd={cfg.weight_decay:g} warmup={cfg.warmup_steps} ema={cfg.ema_decay:g}; Sudoku {cfg.givens} givens, "
            f"{cfg.num_train} train / {cfg.num_eval} held-out; {cfg.budget_s:g} s per framework, eval every "
            f"{cfg.eval_every_s:g} s, {cfg.threads} threads; trm_jax halted samples: {cfg.halted_samples}")


def _ints(text: str) -> tuple:
    return tuple(int(x) for x in text.split(",") if x.strip())


def add_time_to_accuracy_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, DEFAULT, OPTIONS)
    p.add_argument("--recipe", choices=RECIPES, default="same",
                   help="same: both sides train the same recipe (deep supervision); fast: trm_jax trains with "
                        "final-step supervision and evaluates with settled halting (docs/final-step.md)")
    p.add_argument("--fast-cycles", type=_ints, default=FAST_CYCLES,
                   help=f"--recipe fast: trm_jax's T (cycles per sample) of each stage, comma-separated (default "
                        f"{','.join(map(str, FAST_CYCLES))}; the last runs until the budget ends)")
    p.add_argument("--fast-stage-steps", type=_ints, default=FAST_STAGE_STEPS,
                   help=f"--recipe fast: steps of every stage but the last (default "
                        f"{','.join(map(str, FAST_STAGE_STEPS))})")
    p.add_argument("--fast-transition", type=float, default=FAST_TRANSITION,
                   help=f"--recipe fast: trm_jax's training.transition_grad_prob (default {FAST_TRANSITION:g})")
    p.add_argument("--quick", action="store_true", help=f"tiny configuration ({label(QUICK)}; options given change it)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per worker process (default: 3 x budget + 600)")
    add_malloc_hugepages_argument(p)


# ------------------------------------------------------------------------------------------- data

def sudoku_arrays(cfg: BenchConfig) -> dict:
    """Training and held-out Sudoku as token arrays (int32 [N, 81]), distinct generator seeds.
    Above the generator's easiest setting (50 givens) puzzles get more of their solution revealed."""
    from trm_jax.data.tokenizers import load_tokenizer
    from trm_jax.tasks.sudoku import EASY_GIVENS, HARD_GIVENS, generate_sudoku, givens_difficulty
    from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset

    if not HARD_GIVENS <= cfg.givens <= 80:
        raise SystemExit(f"--givens must be in [{HARD_GIVENS}, 80], got {cfg.givens}")
    difficulty = float(givens_difficulty([min(cfg.givens, EASY_GIVENS)])[0])
    tok = load_tokenizer("grid")[0]
    out = {}
    for split, n, seed in (("train", cfg.num_train, 2 * cfg.seed), ("eval", cfg.num_eval, 2 * cfg.seed + 1)):
        puzzles, solutions = generate_sudoku(n, seed=seed, difficulty=difficulty)
        puzzles = reveal(puzzles, solutions, cfg.givens, np.random.default_rng(seed))
        ds = make_sudoku_dataset(puzzles, solutions, tok, cfg.seq_len, keep_texts=False)
        out[f"{split}_inputs"], out[f"{split}_labels"] = ds.inputs, ds.labels
    return out


def reveal(puzzles: np.ndarray, solutions: np.ndarray, givens: int, rng: np.random.Generator) -> np.ndarray:
    """`puzzles` with random blanks filled from their solutions up to `givens` givens each (more givens
    keep the solution unique); puzzles that have as many already are returned as they are."""
    p = puzzles.copy()
    need = np.maximum(givens - (p > 0).sum(1), 0)
    rows = np.arange(len(p))[:, None]
    cells = np.argsort(np.where(p == 0, rng.random(p.shape), np.inf), axis=1)  # blanks first, shuffled
    fill = np.arange(p.shape[1])[None] < need[:, None]
    p[rows, cells] = np.where(fill, solutions[rows, cells], p[rows, cells])
    return p


# ------------------------------------------------------------------------------ clock and curve

POINT_KEYS = ("exact_accuracy", "token_accuracy", "recursion_depth", "exact_accuracy_full_depth",
              "token_accuracy_full_depth")


class TrainClock:
    """Training time (wall and process CPU seconds) with the evaluation pauses left out, and the
    held-out curve: `tick(step)` is called at least once per optimizer step or batch; when
    `eval_every_s` of training time passed since the last point, or the budget is spent, it stops the
    clock, appends `evaluate()` to the curve, restarts the clock, and returns whether the budget is
    spent."""

    def __init__(self, budget_s: float, eval_every_s: float, evaluate: Callable[[], dict]):
        self.budget_s, self.eval_every_s, self.evaluate = budget_s, eval_every_s, evaluate
        self.curve: list = []
        self.wall = self.cpu = self.eval_wall = 0.0
        self._last = 0.0
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def elapsed(self) -> float:
        return self.wall + time.perf_counter() - self._t0

    def tick(self, step: int) -> bool:
        t = self.elapsed()
        done = t >= self.budget_s
        if not done and t - self._last < self.eval_every_s:
            return False
        now = time.perf_counter()
        self.wall += now - self._t0
        self.cpu += time.process_time() - self._c0
        res = self.evaluate()
        self.curve.append(dict(train_s=self.wall, cpu_s=self.cpu, step=int(step), **{k: float(res[k]) for k in res}))
        self._last = self.wall
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self.eval_wall += self._t0 - now
        return done


def _result(clock: TrainClock, framework: str) -> dict:
    return {"framework": framework, "curve": clock.curve, "train_s": clock.wall, "train_cpu_s": clock.cpu,
            "eval_s": clock.eval_wall, "steps": clock.curve[-1]["step"] if clock.curve else 0}


# ------------------------------------------------------------------------------------------ workers

class HeldOutCurve(Callback):
    """trm_jax's side of the clock, as Trainer callbacks: a `TimeBudget` of training time (held-out
    evaluations left out, `count_evaluations=False`) stops the run and asks for the final evaluation;
    this callback, after it in the list, evaluates every `every_s` seconds of that budget's time and
    records each point.

    A point is taken in `on_step` once its time is due: the steps in flight finish first (they count
    as training), `trainer.evaluate()` runs, and its time is added to the budget's excluded time; no
    other step waits for the device. The final point comes from the Trainer's own evaluation at the
    budget's stop (`on_eval`, after the budget has left that evaluation's time out)."""

    def __init__(self, budget: TimeBudget, every_s: float):
        self.budget, self.every_s, self.curve, self.eval_wall = budget, every_s, [], 0.0
        self._last, self._eval_cpu, self._cpu0 = 0.0, 0.0, time.process_time()

    def on_train_start(self, trainer) -> None:
        self._cpu0 = time.process_time()

    def on_step(self, trainer, step, metrics) -> None:
        spent = self.budget.spent()
        if spent - self._last < self.every_s or spent >= self.budget.budget_s:
            return
        trainer.block_until_ready()
        t, c = time.monotonic(), time.process_time()
        results = trainer.evaluate()
        results.update(self._full_depth(trainer))
        self.budget.excluded += time.monotonic() - t
        self.eval_wall += time.monotonic() - t
        self._eval_cpu += time.process_time() - c
        self._point(step, results)

    def on_eval(self, trainer, step, results) -> None:
        # the run's last point: its training time is final, so the extra evaluation is not excluded
        t, c = time.monotonic(), time.process_time()
        results = dict(results, **self._full_depth(trainer))
        self.eval_wall += float(results.get("eval_time_s", 0.0)) + time.monotonic() - t
        self._eval_cpu += time.process_time() - c
        self._point(step, results)

    @staticmethod
    def _full_depth(trainer) -> dict:
        full = trainer.evaluate(halting="head", halt_threshold=NO_EARLY_HALT)
        return {f"{k}_full_depth": full[k] for k in ("exact_accuracy", "token_accuracy")}

    def _point(self, step: int, results: dict) -> None:
        self._last = self.budget.spent()
        cpu = time.process_time() - self._cpu0 - self._eval_cpu
        self.curve.append(dict(train_s=self._last, cpu_s=cpu, step=int(step),
                               **{k: float(results[k]) for k in POINT_KEYS}))


def fast_stages(cycles: Sequence[int], stage_steps: Sequence[int]) -> list[dict]:
    """Curriculum stages of the fast recipe: T = cycles[i] for stage_steps[i] steps each, the last T until the
    budget stops the run."""
    if len(cycles) != len(stage_steps) + 1 or min(cycles) < 2 or (stage_steps and min(stage_steps) < 1):
        raise SystemExit(f"--fast-cycles needs one entry more than --fast-stage-steps, cycles >= 2 and steps >= 1; "
                         f"got {list(cycles)} and {list(stage_steps)}")
    return [dict(steps=steps, num_refinement_blocks=t) for t, steps in zip(cycles, [*stage_steps, 2 ** 30])]


def recipe_options(recipe: str, fast_transition: float = FAST_TRANSITION) -> tuple[dict, dict]:
    """(model keywords, Trainer keywords) of trm_jax's side beyond the shared settings: none for the same
    recipe; settled halting and final-step supervision for the fast one."""
    if recipe == "same":
        return {}, {}
    if recipe != "fast":
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    return dict(halting="settled"), dict(supervision="final", transition_grad_prob=fast_transition)


def train_jax(cfg: BenchConfig, data: dict, callbacks=(), recipe: str = "same",
              fast_cycles: Sequence[int] = FAST_CYCLES, fast_stage_steps: Sequence[int] = FAST_STAGE_STEPS,
              fast_transition: float = FAST_TRANSITION) -> dict:
    import trm_jax
    from trm_jax.config import TRMConfig
    from trm_jax.training.pypi import config_for_model

    t_build = time.monotonic()
    budget = TimeBudget(cfg.budget_s / 60.0, count_evaluations=False)
    curve = HeldOutCurve(budget, cfg.eval_every_s)
    model_kw, train_kw = recipe_options(recipe, fast_transition)
    model = trm_jax.TinyRecursiveModel(
        dim=cfg.dim, num_tokens=cfg.num_tokens,
        network=trm_jax.MLPMixer1D(dim=cfg.dim, depth=cfg.depth, seq_len=cfg.seq_len),
        num_refinement_blocks=cfg.num_refinement_blocks, num_latent_refinements=cfg.num_latent_refinements,
        max_recursion_depth=cfg.max_recursion_depth, halt_threshold=cfg.halt_threshold, **model_kw)
    train, evl = (data["train_inputs"], data["train_labels"]), (data["eval_inputs"], data["eval_labels"])
    training = dict(
        batch_size=cfg.batch_size, seed=cfg.seed, learning_rate=cfg.learning_rate, lr_schedule="constant",
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, beta1=0.9, beta2=0.999, adam_eps=1e-8,
        grad_clip_norm=0.0, ema_decay=cfg.ema_decay, halt_exploration_prob=0.0, halted_samples=cfg.halted_samples,
        eval_every=2 ** 30, eval_batch_size=cfg.eval_batch_size, checkpoint_every=2 ** 30, progress_bar=False,
        **train_kw)
    stack = contextlib.ExitStack()
    if recipe == "fast":  # the PyPI way's config, its one stage replaced by the growing depth's
        _, config, train, evl = config_for_model(model, train, evl, steps=2 ** 30, **training)
        raw = config.to_dict()
        raw["training"].pop("steps")
        raw["data"]["tokenizer"] = "grid"  # the arrays' tokens (sudoku_arrays)
        raw["curriculum"]["stages"] = fast_stages(fast_cycles, fast_stage_steps)
        run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="trm_tta_fast_"))
        trainer = trm_jax.Trainer(config=TRMConfig.from_dict(raw), train_dataset=train, eval_dataset=evl,
                                  run_dir=run_dir, callbacks=[budget, curve, *callbacks])
    else:
        trainer = trm_jax.Trainer(model, train, eval_dataset=evl, steps=2 ** 30, callbacks=[budget, curve, *callbacks],
                                  **training)
    budget.spent_before = time.monotonic() - t_build  # building the model and trainer counts, as for PyTorch
    with stack:
        trainer.train()
    last = curve.curve[-1] if curve.curve else dict(train_s=0.0, cpu_s=0.0, step=0)
    return {"framework": "trm_jax", "curve": curve.curve, "train_s": last["train_s"], "train_cpu_s": last["cpu_s"],
            "eval_s": curve.eval_wall, "steps": last["step"]}


class _BudgetSpent(Exception):
    pass


def _train_torch(cfg: BenchConfig, data: dict) -> dict:
    import tiny_recursive_model as trm_pt
    import torch

    from trm_jax.models import token_matches

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    eval_x, eval_y = torch.from_numpy(data["eval_inputs"]).long(), data["eval_labels"]
    holder = {}

    def predict(threshold: float) -> tuple:
        ema = holder["trainer"].ema_model.ema_model
        preds, depths = [], []
        for i in range(0, len(eval_x), cfg.eval_batch_size):
            pred, depth = ema.predict(eval_x[i:i + cfg.eval_batch_size], halt_prob_thres=threshold,
                                      max_deep_refinement_steps=cfg.max_recursion_depth)
            preds.append(pred.numpy())
            depths.append(depth.numpy())
        correct, count, exact = token_matches(np.concatenate(preds), eval_y)
        return exact.mean(), correct.sum() / max(count.sum(), 1), np.concatenate(depths).mean()

    def evaluate() -> dict:
        exact, token, depth = predict(cfg.halt_threshold)
        exact_full, token_full, _ = predict(NO_EARLY_HALT)  # halt_prob >= 2 never holds
        return dict(exact_accuracy=exact, token_accuracy=token, recursion_depth=depth,
                    exact_accuracy_full_depth=exact_full, token_accuracy_full_depth=token_full)

    class ClockedDataset(torch.utils.data.Dataset):
        """The training arrays; each batch fetch (between the trainer's batches) ticks the clock."""

        def __init__(self, inputs, labels):
            self.inputs, self.labels = torch.from_numpy(inputs).long(), torch.from_numpy(labels).long()

        def __len__(self):
            return len(self.inputs)

        def __getitem__(self, i):
            return self.inputs[i], self.labels[i]

        def __getitems__(self, idx):
            # the EMA's update counter = optimizer steps taken
            if clock.tick(int(holder["trainer"].ema_model.step)):
                raise _BudgetSpent
            return list(zip(self.inputs[idx], self.labels[idx]))

    clock = TrainClock(cfg.budget_s, cfg.eval_every_s, evaluate)
    network = trm_pt.MLPMixer1D(dim=cfg.dim, depth=cfg.depth, seq_len=cfg.seq_len)
    model = trm_pt.TinyRecursiveModel(dim=cfg.dim, num_tokens=cfg.num_tokens, network=network,
                                      num_refinement_blocks=cfg.num_refinement_blocks,
                                      num_latent_refinements=cfg.num_latent_refinements)
    # the PyPI Trainer divides the learning rate by batch_size * max_recurrent_steps
    holder["trainer"] = trainer = trm_pt.Trainer(
        model, ClockedDataset(data["train_inputs"], data["train_labels"]),
        learning_rate=cfg.learning_rate * cfg.batch_size * cfg.max_recursion_depth, weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size, epochs=2 ** 30, halt_prob_thres=cfg.halt_threshold,
        max_recurrent_steps=cfg.max_recursion_depth, warmup_steps=cfg.warmup_steps, ema_decay_rate=cfg.ema_decay,
        cpu=True)
    # the trainer prints a line per step: still formatted and written (its cost counts), to /dev/null
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        try:
            trainer()
        except _BudgetSpent:
            pass
    return _result(clock, "PyTorch")


def train_worker(spec: dict) -> dict:
    """Worker entry (TRAIN_WORKER, run by `benchmarks.harness.run_worker`): train one framework, return its curve."""
    cfg = BenchConfig(**spec["config"])
    with np.load(spec["data"], allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    if spec["framework"] == "jax":
        result = train_jax(cfg, data, recipe=spec.get("recipe", "same"),
                           fast_cycles=spec.get("fast_cycles", FAST_CYCLES),
                           fast_stage_steps=spec.get("fast_stage_steps", FAST_STAGE_STEPS),
                           fast_transition=spec.get("fast_transition", FAST_TRANSITION))
    else:
        result = _train_torch(cfg, data)
    return dict(result, malloc_hugepages=huge_pages_enabled())


# ------------------------------------------------------------------------------------------ report

def time_to_reach(curve: list, target: float, key: str = "exact_accuracy") -> Optional[float]:
    """Training seconds of the first held-out point with `key` >= target; None if none reaches it."""
    return next((p["train_s"] for p in curve if p[key] >= target), None)


def compare(jax_run: dict, torch_run: dict, key: str, goal: float = GOALS["same"]) -> dict:
    """Time of each framework to reach the PyTorch run's final `key` and their ratio (trm_jax /
    PyTorch; None with a reason where it is undefined)."""
    target = torch_run["curve"][-1][key] if torch_run["curve"] else None
    out = {"metric": key, "target": target, "jax_s": None, "torch_s": None, "ratio": None, "note": ""}
    if not target:
        out["note"] = f"PyTorch's final {key} is 0: no target to reach"
        return out
    out["torch_s"] = time_to_reach(torch_run["curve"], target, key)
    out["jax_s"] = time_to_reach(jax_run["curve"], target, key)
    if out["jax_s"] is None:
        out["note"] = f"trm_jax did not reach {target:.4f} within its budget"
    else:
        out["ratio"] = out["jax_s"] / out["torch_s"]
        out["note"] = f"goal (<= {goal:g}) {'met' if out['ratio'] <= goal else 'not met'}"
    return out


def _report(res: dict) -> None:
    for run in (res["jax"], res["torch"]):
        steps, t = run["steps"], max(run["train_s"], 1e-9)
        print(f"\n{run['framework']}: {steps} optimizer steps in {run['train_s']:.1f} s of training "
              f"({steps / t:.1f} steps/s, CPU {run['train_cpu_s'] / t:.2f} s per s), "
              f"{run['eval_s']:.1f} s of held-out evaluation outside the clock; load average before "
              f"{run.get('load_before', float('nan')):.2f}")
        print(f"{'train s':>9s}{'steps':>8s}{'exact':>8s}{'token':>8s}{'depth':>7s}   at full depth: "
              f"{'exact':>6s}{'token':>8s}")
        for p in run["curve"]:
            print(f"{p['train_s']:9.1f}{p['step']:8d}{p['exact_accuracy']:8.4f}{p['token_accuracy']:8.4f}"
                  f"{p['recursion_depth']:7.2f}{'':17s}{p['exact_accuracy_full_depth']:6.4f}"
                  f"{p['token_accuracy_full_depth']:8.4f}")
    print()
    for c in res["compare"]:
        name = c["metric"].replace("_accuracy", " accuracy").replace("_full_depth", " at full depth")
        if c["target"]:
            fmt = lambda s: "not reached" if s is None else f"{s:.1f} s"  # noqa: E731
            ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
            print(f"{name}: time to reach PyTorch's final {c['target']:.4f}: trm_jax {fmt(c['jax_s'])}, "
                  f"PyTorch {fmt(c['torch_s'])}; ratio trm_jax/PyTorch {ratio} ({c['note']})")
        else:
            print(f"{name}: ratio - ({c['note']})")
    print(f"times: the first held-out point at or above the target (resolution {res['config']['eval_every_s']:g} s "
          "of training); trm_jax's time includes its compilation")


def bench_time_to_accuracy(args: argparse.Namespace) -> dict:
    cfg = config_from_args(args, DEFAULT, QUICK)
    recipe = dict(recipe=args.recipe, fast_cycles=list(args.fast_cycles), fast_stage_steps=list(args.fast_stage_steps),
                  fast_transition=args.fast_transition)
    if args.recipe == "fast":
        fast_stages(args.fast_cycles, args.fast_stage_steps)  # bad lists fail here, not in the worker
    trm_recipe = ("the same recipe" if args.recipe == "same" else
                  f"recipe fast: trm_jax final-step supervision, T {args.fast_cycles} after "
                  f"{args.fast_stage_steps} steps, transition_grad_prob {args.fast_transition:g}, settled halting")
    print(f"time to accuracy: trm_jax Trainer vs tiny-recursive-model Trainer; {label(cfg)}; {trm_recipe}; malloc "
          f"huge pages {'on' if args.malloc_hugepages else 'off'} for both", flush=True)
    env = worker_env(args.malloc_hugepages)
    timeout = args.timeout or 3 * cfg.budget_s + 600
    res: dict = {"config": dataclasses.asdict(cfg), "malloc_hugepages": args.malloc_hugepages, **recipe}
    with tempfile.TemporaryDirectory(prefix="trm_tta_") as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **sudoku_arrays(cfg))
        for fw, name in (("jax", "trm_jax"), ("torch", "PyTorch")):
            load = os.getloadavg()[0]
            print(f"{name}: training for {cfg.budget_s:g} s (1-minute load average {load:.2f}) ...", flush=True)
            res[fw] = run_worker(TRAIN_WORKER, {"config": dataclasses.asdict(cfg), "framework": fw, "data": path,
                                                "threads": cfg.threads, **recipe}, env, timeout)
            res[fw]["load_before"] = load
    res["compare"] = [compare(res["jax"], res["torch"], k, GOALS[args.recipe])
                      for k in ("exact_accuracy", "token_accuracy", "exact_accuracy_full_depth")]
    _report(res)
    return res
