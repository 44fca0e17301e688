"""Adaptation throughput at the official ARC-AGI config's shapes (steps/s, tasks per minute per device, MFU), and
adaptation accuracy on two toy families (`replay`, `rows`).

    python -m benchmarks.adaptation [--dim 512] [--batch-size 768] [--steps 40] [--dtype bfloat16] [--train embeddings]
    JAX_PLATFORMS=cuda python -m benchmarks.adaptation --json adaptation_gpu.json       # the full config on a GPU
    python -m benchmarks.adaptation --dim 64 --batch-size 16 --steps 4 --dtype float32      # CPU, shrunk width

The model is configs/arc_agi_1.yaml's (transformer, 900 tokens + 16 prefix positions, T=3, n=4, up to 16
supervision steps), at `--dim`/`--batch-size` (heads keep their width of 64 where the dim allows). The timed work
is `trm_jax.adapt_puzzle_embeddings` itself on random ARC-shaped rows: a first call compiles, a second
call of the same shapes (the compiled step is reused) is timed end to end, so the table copy and the
progress readings are inside the clock. A random model never halts: every slot runs all
`max_recursion_depth` supervision steps before taking a new row, the most a trained model's rows cost.

Tasks per minute per device: one pass over a task's adaptation rows ((1 + num_aug) augmentations x its
demonstrations; ARC-AGI-1 evaluation tasks have 3.41 on average), each row running `max_recursion_depth`
supervision steps in a slot, at the measured step rate (scaled to the batch per device). FLOPs: the
matmuls of benchmarks.flops (2 per multiply-add) for the forward T*(n+1) network applications and the
backward of the last cycle, which with `--train embeddings` computes no weight gradients. MFU is relative
to the device's dense peak for `--dtype` where the device is known (`benchmarks.flops.PEAK_TFLOPS`), else
to XLA's float32 matmul peak measured here. The GPU estimate divides the FLOPs of a
step by each GPU's peak at the MFU measured here (`--assume-mfu` to set it).

Accuracy (docs/adaptation.md's tables; each run a minute or a few on 2 CPU cores):

    python -m benchmarks.adaptation replay --family lookup        # forgetting: train="all" with and without replay
    python -m benchmarks.adaptation rows --family lookup --identifiers 24 1536 --train-steps 2400 --train-batch 128
    python -m benchmarks.adaptation rows --family lookup --known  # new identifiers, rules the run learned

A run trains on `--identifiers` identifiers of a `Family` (`permutation`: the tests' toy family, 6 rules in
all; `lookup`: a random lookup table over 8 symbols per identifier), then adapts to `--new` identifiers from
`--demos` demonstration pairs each, once per `--variants` entry ("train=all,replay=0.5", "lr=3e-2,steps=1000",
"init=random", ...), and reports exact and token accuracy on 16 held-out pairs of every new identifier and
on 8 unseen pairs of every trained one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import time
from typing import Optional

import jax
import numpy as np
import yaml

from benchmarks.flops import (PEAK_TFLOPS, backward_einsums, device_peak, einsum_flops, head_flops, net_flops,
                              net_matmuls)
from benchmarks.harness import CONFIGS, BenchConfig, write_json
from benchmarks.kernels import matmul_peak
from trm_jax.config import ModelConfig, TrainingConfig
from trm_jax.data.datasets import ArrayDataset
from trm_jax.models import PUZZLE_EMB, make_model, predict, token_matches
from trm_jax.training.adapt import adapt_puzzle_embeddings

ARC_CONFIG = pathlib.Path(os.path.join(CONFIGS, "arc_agi_1.yaml"))
ARC_SEQ_LEN = 900
DEMOS_PER_TASK = 3.41  # ARC-AGI-1 evaluation: 1364 demonstration pairs over 400 tasks (ARC-AGI-2: 2.99)
NUM_AUG = 100  # trm_jax.tasks.arc.ADAPT_NUM_AUG
GPU_ESTIMATES = ("H100", "A100", "L4")  # Kaggle's ARC Prize machines have L4s (and T4s: no bfloat16 units)


def arc_model(dim: int, dtype: str, rows: int):
    """configs/arc_agi_1.yaml's model at width `dim` with a `rows`-row puzzle table."""
    raw = yaml.safe_load(ARC_CONFIG.read_text())["model"]
    heads = max(1, min(raw["num_heads"], dim // 64))
    cfg = ModelConfig(**dict(raw, dim=dim, num_heads=heads, puzzle_emb_ndim=dim, dtype=dtype,
                             num_puzzle_identifiers=rows))
    return make_model(cfg, cfg.num_tokens, ARC_SEQ_LEN), cfg


def arc_rows(n: int, first_id: int, ids: int, seed: int = 0) -> dict:
    """Random rows shaped as ARC adaptation rows: colour tokens 2..11 on the 900-token canvas."""
    rng = np.random.default_rng(seed)
    return dict(inputs=rng.integers(2, 12, (n, ARC_SEQ_LEN)).astype(np.uint8),
                labels=rng.integers(2, 12, (n, ARC_SEQ_LEN)).astype(np.uint8),
                puzzle_ids=(first_id + rng.integers(0, ids, n)).astype(np.int32))


def step_flops(cfg: ModelConfig, batch: int, dense: bool) -> float:
    """Matmul FLOPs of one adaptation step: T*(n+1) forward network applications and heads, the last cycle's
    backward (input gradients; weight gradients only when `dense`)."""
    bc = BenchConfig.from_model(cfg, ARC_SEQ_LEN, batch)
    backward = 0.0
    for name, eq, lhs, rhs in net_matmuls(bc):
        input_grad, weight_grad = backward_einsums(eq, lhs, rhs)
        backward += einsum_flops(*input_grad)
        if dense or any(k in name for k in ("scores", "weighted sum")):  # both operands are activations
            backward += einsum_flops(*weight_grad)
    n, T = bc.num_latent_refinements, bc.num_refinement_blocks
    return T * (n + 1) * net_flops(bc) + (n + 1) * backward + (3 if dense else 2) * head_flops(bc)


def first_device_peak(dtype: str) -> tuple[float, str]:
    """(peak FLOP/s, what it is) of the first device for `dtype`."""
    kind = jax.devices()[0].device_kind
    peak = device_peak(kind, dtype)
    if peak is not None:
        return peak, f"{kind} {dtype} dense peak {peak / 1e12:.0f} TFLOP/s"
    peak = matmul_peak("jax") * 1e9
    return peak, f"{kind}: XLA float32 2048^2 matmul peak measured here, {peak / 1e9:.0f} GFLOP/s"


def measure(args) -> dict:
    model, cfg = arc_model(args.dim, args.dtype, args.rows)
    params = model.init_params(jax.random.key(0))
    if args.rows > 1:  # a trained table: rows hold values, so new ones start from their mean
        params[PUZZLE_EMB] = np.random.default_rng(1).normal(0, 0.1, params[PUZZLE_EMB].shape).astype(np.float32)
    data = arc_rows(args.data_rows, args.rows, args.identifiers)
    training = TrainingConfig(**{k: v for k, v in yaml.safe_load(ARC_CONFIG.read_text())["training"].items()
                                 if k in {f.name for f in dataclasses.fields(TrainingConfig)}})
    run = lambda: adapt_puzzle_embeddings(model, params, data, steps=args.steps, batch_size=args.batch_size,  # noqa: E731
                                          train=args.train, rng=0, training=training, progress=False)
    t0 = time.perf_counter()
    jax.block_until_ready(run()[1][PUZZLE_EMB])  # compiles
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(run()[1][PUZZLE_EMB])
    seconds = time.perf_counter() - t0
    stats = jax.devices()[0].memory_stats() or {}
    devices = jax.local_device_count()
    steps_per_s = args.steps / seconds
    rows_per_task = (1 + args.num_aug) * DEMOS_PER_TASK
    # a slot holds a row for max_recursion_depth steps: one pass over a task's rows costs this many slot-steps
    slot_steps_per_task = rows_per_task * cfg.max_recursion_depth
    tasks_per_min = steps_per_s * args.batch_size / devices * 60 / slot_steps_per_task
    flops = step_flops(cfg, args.batch_size, args.train == "all")
    peak, peak_desc = first_device_peak(args.dtype)
    mfu = flops * steps_per_s / devices / peak
    return dict(device=jax.devices()[0].device_kind, devices=devices, dim=args.dim, heads=cfg.num_heads,
                batch=args.batch_size, dtype=args.dtype, train=args.train, steps=args.steps, seconds=seconds,
                compile_and_first_run_s=first, steps_per_s=steps_per_s, step_ms=1e3 * seconds / args.steps,
                num_aug=args.num_aug, rows_per_task=rows_per_task, slot_steps_per_task=slot_steps_per_task,
                tasks_per_min_per_device=tasks_per_min, step_gflop=flops / 1e9,
                achieved_tflops_per_device=flops * steps_per_s / devices / 1e12, peak=peak_desc, mfu=mfu,
                peak_memory_gb=stats.get("peak_bytes_in_use", 0) / 2 ** 30 or None)


def gpu_estimates(cfg_dim: int, args, mfu: float) -> list[dict]:
    """Tasks per minute on GPUs at the official width and batch, from the FLOPs of a step at `mfu`."""
    _, cfg = arc_model(cfg_dim, "bfloat16", 1)
    batch = yaml.safe_load(ARC_CONFIG.read_text())["training"]["batch_size"]
    flops = step_flops(cfg, batch, args.train == "all")
    out = []
    for gpu in GPU_ESTIMATES:
        steps_per_s = PEAK_TFLOPS["bfloat16"][gpu] * 1e12 * mfu / flops
        tasks = steps_per_s * batch * 60 / ((1 + args.num_aug) * DEMOS_PER_TASK * cfg.max_recursion_depth)
        out.append(dict(gpu=gpu, batch=batch, step_gflop=flops / 1e9, mfu=mfu, steps_per_s=steps_per_s,
                        tasks_per_min=tasks))
    return out


# ------------------------------------------------- accuracy: forgetting (replay) and rows-only adaptation

@dataclasses.dataclass(frozen=True)
class Family:
    """A task family whose rule per identifier only the demonstrations tell: each puzzle identifier owns a
    token map over the symbols 1..num_symbols (token 0 unused, mapped to itself); an input is a random string
    of `seq_len` symbols, its label the string mapped symbol by symbol. Nothing in an input says which map
    applies: a model learns it from the identifier's row of its puzzle table.

    `permutation`: the maps are permutations of the symbols (3 symbols: 6 maps, so 24 trained identifiers hold
    every rule a new one can have); else lookup tables, each symbol's image drawn on its own (8 symbols:
    8^8 = 16.8 million rules, so a new identifier's rule is one the run never saw)."""

    name: str
    num_symbols: int
    permutation: bool
    seq_len: int = 8

    @property
    def vocab(self) -> int:
        return self.num_symbols + 1

    def maps(self, identifiers, seed: int) -> dict:
        """identifier -> token map [vocab] (0 -> 0), drawn per identifier."""
        out = {}
        for pid in identifiers:
            rng = np.random.default_rng([seed, int(pid)])
            image = (rng.permutation(self.num_symbols) if self.permutation
                     else rng.integers(0, self.num_symbols, self.num_symbols))
            out[int(pid)] = np.concatenate([[0], 1 + image]).astype(np.int32)
        return out

    def samples(self, maps: dict, per_identifier: int, seed: int) -> dict:
        """`per_identifier` (input, label) pairs for every identifier of `maps`: inputs, labels, puzzle_ids."""
        rng = np.random.default_rng(seed)
        ids = np.repeat(np.asarray(sorted(maps), np.int32), per_identifier)
        inputs = rng.integers(1, self.vocab, (len(ids), self.seq_len)).astype(np.int32)
        labels = np.stack([maps[int(p)][x] for p, x in zip(ids, inputs)])
        return dict(inputs=inputs, labels=labels, puzzle_ids=ids)

    def model(self, num_identifiers: int, **overrides):
        """A small official-variant transformer with a puzzle table of `num_identifiers` rows."""
        cfg = dict(variant="official", network="transformer", dim=32, depth=1, num_heads=2, puzzle_emb_ndim=32,
                   puzzle_emb_len=1, num_puzzle_identifiers=num_identifiers, num_refinement_blocks=2,
                   num_latent_refinements=1, max_recursion_depth=2, pos_encodings="rope")
        cfg.update(overrides)
        if "dim" in overrides and "puzzle_emb_ndim" not in overrides:
            cfg["puzzle_emb_ndim"] = cfg["dim"]
        return make_model(ModelConfig(**cfg), self.vocab, self.seq_len)


FAMILIES = {"permutation": Family("permutation", 3, True),  # the toy family of tests/training/test_adapt.py
            "lookup": Family("lookup", 8, False)}


def train_family(family: Family, identifiers: int, *, steps: int, per_identifier: int = 32, dim: int = 32,
                 batch_size: int = 64, learning_rate: float = 3e-3, seed: int = 0):
    """(model, params, train ArrayDataset) of a run trained on identifiers 1..`identifiers` (0 stays blank)."""
    from trm_jax.training import Trainer

    data = family.samples(family.maps(range(1, identifiers + 1), seed=seed), per_identifier, seed=seed + 1)
    dataset = ArrayDataset(inputs=data["inputs"], labels=data["labels"], difficulty=np.zeros(len(data["inputs"])),
                           puzzle_ids=data["puzzle_ids"])
    result = Trainer(family.model(identifiers + 1, dim=dim), dataset, steps=steps, batch_size=batch_size,
                     learning_rate=learning_rate, warmup_steps=20, ema_decay=0.0, progress_bar=False, seed=seed)()
    return result.model, result.params, dataset


def family_accuracy(model, params, data: dict) -> dict:
    """Token and exact accuracy of `model` on `data` (its own puzzle identifiers)."""
    tokens = np.asarray(predict(model, params, data["inputs"], puzzle_ids=data["puzzle_ids"]).tokens)
    correct, count, exact = token_matches(tokens, data["labels"])
    return dict(token=float(np.sum(correct) / np.sum(count)), exact=float(np.mean(exact)))


def new_identifiers(family: Family, trained: int, count: int, *, known: bool = False, draw: int = 0):
    """identifier -> map of `count` identifiers after the `trained` ones: rules drawn afresh (seed 100 + `draw`),
    or with `known` the rules of `count` trained identifiers (drawn by `draw`): rules the run learned, under
    identifiers it never saw."""
    first = trained + 1
    if known:
        rules = family.maps(range(1, trained + 1), seed=0)
        picks = np.random.default_rng(draw).choice(np.arange(1, trained + 1), count, replace=count > trained)
        return {first + i: rules[int(c)] for i, c in enumerate(picks)}
    return family.maps(range(first, first + count), seed=100 + draw)


def start_table(params: dict, new_ids, init: str, demos: dict, model, seed: int = 0) -> dict:
    """`params` with the table grown to `new_ids` and their rows set as `init` says: "mean" leaves them zero
    (adapt_puzzle_embeddings starts them at the mean of the trained rows); "random": the mean plus Gaussian
    noise of each coordinate's spread over the trained rows; "nearest": the trained row that answers the
    identifier's demonstrations best."""
    table = np.asarray(params[PUZZLE_EMB])
    trained = table[np.any(table != 0, axis=1)]
    rows = max(new_ids) + 1
    grown = np.concatenate([table, np.zeros((rows - len(table), table.shape[1]), table.dtype)])
    new_ids = np.asarray(sorted(new_ids))
    if init == "random":
        noise = np.random.default_rng(seed).normal(size=(len(new_ids), table.shape[1]))
        grown[new_ids] = trained.mean(0) + noise * trained.std(0)
    elif init == "nearest":
        best = np.zeros(len(new_ids), int)
        score = np.full(len(new_ids), -1.0)
        candidates = np.nonzero(np.any(table != 0, axis=1))[0]
        for c in candidates:  # every demonstration answered through trained row c
            ids = np.full(len(demos["inputs"]), c)
            tokens = np.asarray(predict(model, params, demos["inputs"], puzzle_ids=ids).tokens)
            correct, count, _ = token_matches(tokens, demos["labels"])
            for j, pid in enumerate(new_ids):
                own = demos["puzzle_ids"] == pid
                s = correct[own].sum() / count[own].sum()
                if s > score[j]:
                    score[j], best[j] = s, c
        grown[new_ids] = table[best]
    elif init != "mean":
        raise ValueError(f"init must be mean, random or nearest, got {init!r}")
    return {**params, PUZZLE_EMB: grown}


def adapt_and_score(family: Family, model, params, demos: dict, held_out: dict, old: dict, *, steps: int,
                    train: str = "embeddings", replay: Optional[float] = None, replay_data=None,
                    lr: Optional[float] = None, schedule: str = "cosine", init: str = "mean",
                    batch_size: int = 64, rng: int = 0) -> dict:
    """One adaptation to `demos`; accuracy on the new identifiers' held-out pairs and on the trained ones'."""
    start = start_table(params, np.unique(demos["puzzle_ids"]), init, demos, model) if init != "mean" else params
    training = TrainingConfig(batch_size=batch_size, lr_schedule=schedule)
    t0 = time.perf_counter()
    adapted_model, adapted = adapt_puzzle_embeddings(model, start, demos, steps=steps, learning_rate=lr, train=train,
                                                     replay=replay, replay_data=replay_data, rng=rng, training=training,
                                                     progress=False)
    seconds = time.perf_counter() - t0
    new, kept = family_accuracy(adapted_model, adapted, held_out), family_accuracy(adapted_model, adapted, old)
    return dict(new_exact=new["exact"], new_token=new["token"], old_exact=kept["exact"], old_token=kept["token"],
                seconds=seconds)


def accuracy_setup(family: Family, identifiers: int, args) -> dict:
    """A run trained on `identifiers` identifiers, its held-out pairs, and `args.draws` draws of new identifiers
    (their demonstrations and held-out pairs)."""
    t0 = time.perf_counter()
    model, params, dataset = train_family(family, identifiers, steps=args.train_steps, dim=args.dim,
                                          per_identifier=args.per_identifier, batch_size=args.train_batch)
    train_s = time.perf_counter() - t0
    old = family.samples(family.maps(range(1, identifiers + 1), seed=0), 8, seed=11)  # pairs training never saw
    draws = []
    for k in range(args.draws):
        maps = new_identifiers(family, identifiers, args.new, known=args.known, draw=k)
        draws.append((family.samples(maps, args.demos, seed=3 + 10 * k), family.samples(maps, 16, seed=4 + 10 * k)))
    held_out = draws[0][1]
    blank = family_accuracy(model, params, dict(held_out, puzzle_ids=np.zeros_like(held_out["puzzle_ids"])))
    return dict(model=model, params=params, dataset=dataset, old=old, draws=draws,
                info=dict(family=family.name, identifiers=identifiers, train_steps=args.train_steps, dim=args.dim,
                          train_batch=args.train_batch, per_identifier=args.per_identifier, train_s=train_s,
                          trained=family_accuracy(model, params, old), blank=blank))


def parse_variant(text: str) -> dict:
    """"train=all,replay=0.5,lr=3e-2,steps=1000,schedule=constant,init=random" -> adapt_and_score keywords."""
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key in ("replay", "lr"):
            out[key] = float(value)
        elif key in ("steps", "batch_size"):
            out[key] = int(value)
        elif key in ("train", "schedule", "init"):
            out[key] = value
        else:
            raise SystemExit(f"unknown variant key {key!r} in {text!r} (train, replay, lr, steps, schedule, init, "
                             "batch_size)")
    return out


REPLAY_VARIANTS = ("train=embeddings", "train=all,replay=0", "train=all,replay=0.25", "train=all,replay=0.5")
ROWS_VARIANTS = ("lr=1e-2", "lr=3e-3", "lr=3e-2", "lr=1e-1", "lr=1e-2,schedule=constant", "lr=1e-2,steps=1000",
                 "lr=3e-3,steps=1000", "lr=1e-2,init=random", "lr=1e-2,init=nearest")


def accuracy_main(mode: str, argv) -> None:
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.adaptation {mode}",
                                 description="adaptation accuracy on a toy family: new identifiers' held-out pairs "
                                             "and the trained identifiers' (before and after)")
    ap.add_argument("--family", choices=sorted(FAMILIES), default="lookup")
    ap.add_argument("--identifiers", type=int, nargs="+", default=[24], help="identifiers the run trains on")
    ap.add_argument("--train-steps", type=int, default=400)
    ap.add_argument("--train-batch", type=int, default=64, help="the run's batch size")
    ap.add_argument("--per-identifier", type=int, default=32, help="training pairs per trained identifier")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--new", type=int, default=12, help="new identifiers to adapt to")
    ap.add_argument("--demos", type=int, default=8, help="demonstration pairs per new identifier")
    ap.add_argument("--known", action="store_true", help="the new identifiers take trained identifiers' rules")
    ap.add_argument("--draws", type=int, default=1, help="draws of new identifiers (rules, pairs, adaptation rng) "
                    "per variant; the table gives their mean")
    ap.add_argument("--steps", type=int, default=300, help="adaptation steps (a variant's steps= overrides)")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="adaptations to run, each 'key=value,...' (train, replay, lr, steps, schedule, init, "
                         f"batch_size); default {' '.join(REPLAY_VARIANTS if mode == 'replay' else ROWS_VARIANTS)}")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    variants = [(text, parse_variant(text)) for text in args.variants or (REPLAY_VARIANTS if mode == "replay"
                                                                           else ROWS_VARIANTS)]
    family = FAMILIES[args.family]
    results = []
    for n in args.identifiers:
        s = accuracy_setup(family, n, args)
        info = s["info"]
        print(f"{family.name}, {n} trained identifiers, {args.train_steps} steps of {args.train_batch}, dim {args.dim} "
              f"({info['train_s']:.0f} s):"
              f" trained identifiers {info['trained']['exact']:.3f} exact ({info['trained']['token']:.3f} token); "
              f"new ones with the blank identifier {info['blank']['exact']:.3f} ({info['blank']['token']:.3f})")
        for text, variant in variants:
            kw = {"steps": args.steps, **variant}
            if kw.get("train") == "all" and kw.get("replay", 1) > 0:
                kw["replay_data"] = s["dataset"]
            runs = [adapt_and_score(family, s["model"], s["params"], demos, held_out, s["old"], rng=k, **kw)
                    for k, (demos, held_out) in enumerate(s["draws"])]
            r = {key: float(np.mean([x[key] for x in runs])) for key in runs[0]}
            each = " | draws " + " ".join(f"{x['new_exact']:.3f}" for x in runs) if len(runs) > 1 else ""
            print(f"  {text:<32} new {r['new_exact']:.3f} exact ({r['new_token']:.3f} token) | trained "
                  f"{r['old_exact']:.3f} ({r['old_token']:.3f}) | {r['seconds']:.0f} s{each}", flush=True)
            results.append(dict(info, variant=text, known=args.known, draws=runs, **r))
    write_json(args.json, results)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("replay", "rows"):
        return accuracy_main(argv[0], argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=512, help="model width (official 512)")
    ap.add_argument("--batch-size", type=int, default=768, help="slots per step, all local devices (official 768)")
    ap.add_argument("--steps", type=int, default=40, help="timed adaptation steps")
    ap.add_argument("--dtype", default=None, help="compute dtype (default: the config's, bfloat16)")
    ap.add_argument("--train", choices=("embeddings", "all"), default="embeddings")
    ap.add_argument("--rows", type=int, default=730517, help="rows of the trained table (official ARC-AGI-1 size)")
    ap.add_argument("--data-rows", type=int, default=4096, help="adaptation rows held on the device")
    ap.add_argument("--identifiers", type=int, default=1200, help="new identifiers the rows use")
    ap.add_argument("--num-aug", type=int, default=NUM_AUG, help="augmentations per task in the tasks/min figure")
    ap.add_argument("--assume-mfu", type=float, default=None, help="MFU of the GPU estimate (default: measured)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    args.dtype = args.dtype or yaml.safe_load(ARC_CONFIG.read_text())["model"]["dtype"]
    r = measure(args)
    print(f"{r['device']} x{r['devices']} | dim {r['dim']} ({r['heads']} heads), batch {r['batch']}, {r['dtype']}, "
          f"train={r['train']}")
    print(f"compile + first {r['steps']} steps: {r['compile_and_first_run_s']:.1f} s")
    print(f"step {r['step_ms']:.1f} ms | {r['steps_per_s']:.3f} steps/s | {r['step_gflop']:.0f} GFLOP/step | "
          f"{r['achieved_tflops_per_device']:.3f} TFLOP/s per device | MFU {100 * r['mfu']:.1f}% ({r['peak']})")
    if r["peak_memory_gb"]:
        print(f"device peak memory {r['peak_memory_gb']:.2f} GB")
    print(f"one pass over a task's rows ({1 + r['num_aug']} augmentations x {DEMOS_PER_TASK} demonstrations, "
          f"{r['slot_steps_per_task']:.0f} slot-steps): {r['tasks_per_min_per_device']:.3g} tasks/min/device")
    mfu = args.assume_mfu if args.assume_mfu is not None else r["mfu"]
    estimates = gpu_estimates(512, args, mfu)
    print(f"GPU estimate at the official width and batch, MFU {100 * mfu:.1f}% "
          f"({'assumed' if args.assume_mfu is not None else 'measured here'}):")
    for e in estimates:
        print(f"  {e['gpu']:>5}: {e['steps_per_s']:.3g} steps/s, {e['tasks_per_min']:.3g} tasks/min "
              f"(one pass over each task's rows)")
    write_json(args.json, dict(measured=r, gpu_estimates=estimates))


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
