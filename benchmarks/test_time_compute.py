"""Test-time compute on a trained Sudoku run: exact accuracy and time per puzzle with K noisy trajectories
(chosen by the halting head or by vote), the noise scale and where it goes, and deeper recursion.

    python -m benchmarks.test_time_compute --run RUN_DIR [--parts tune,main,depth,time] [--json F]

Test sets: held-out generated puzzles at 25/30/35 givens (the seeds of benchmarks.sudoku_accuracy) and the
shipped Sudoku-Extreme sample. The noise scale is tuned on other puzzles (`tune`: generated at seeds
neither training nor the test sets use), then the test sets are measured at the best scale and place of
the tuning (or at `--noise-std` / `--noise-on`; without `tune`: the package defaults). Parts:

  tune   tuning sets (25 and 30 givens, --tune-num each): K=16, each noise scale (--sigmas) x where the
         noise goes (--tune-noise-on: z, y, both)
  main   test sets: one K=64 run per set; K = 1, 4, 16, 64 are its first K trajectories (a trajectory's
         noise depends only on its sample, its index and the step, so they are the K-trajectory runs),
         chosen by the halting head or by vote; "any" = some trajectory is right (the ceiling of a choice)
  depth  test sets: max_recursion_depth 8/16/32, one noiseless trajectory and K=16
  time   time per puzzle of each K and depth on the first --time-num puzzles of the 30-given set, and the
         ratio to plain predict (after a warm-up call, in this process; on a loaded machine only the
         ratios mean much)
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import trm_jax
from benchmarks.harness import write_json
from benchmarks.sudoku_accuracy import SAMPLE, held_out
from trm_jax.evaluation import dataset_for
from trm_jax.models import DEFAULT_NOISE_STD, Trajectories, predict_trajectories, token_matches
from trm_jax.models.trajectories import DEFAULT_NOISE_ON, NOISE_ON, chosen_index, indexed_keys
from trm_jax.tasks.sudoku import generate_sudoku, givens_difficulty
from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset

TUNE_SEED = 4_242  # tuning puzzles: neither training (the run's seed) nor the test sets (sudoku_accuracy) use it
TEST_GIVENS = (25, 30, 35)
TUNE_GIVENS = (25, 30)
KS = (1, 4, 16, 64)
SIGMAS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
DEPTHS = (8, 16, 32)


def sudoku_sets(p, num: int, givens, seed=None) -> dict:
    """{name: (inputs int32 [N, 81], labels int32 [N, 81])}: generated puzzles (held-out seeds unless `seed`)."""
    out = {}
    for g in givens:
        if seed is None:
            puzzles, solutions = held_out(g, num)
        else:
            puzzles, solutions = generate_sudoku(num, seed=seed + g, difficulty=float(givens_difficulty(g)))
        ds = make_sudoku_dataset(puzzles, solutions, p.tokenizer, p.seq_len)
        out[f"{g} givens"] = (ds.inputs, ds.labels)
    return out


def run(p, inputs, *, trajectories: int, noise_std, depth=None, noise_on=DEFAULT_NOISE_ON, seed=0, chunk=64,
        compact=True) -> Trajectories:
    """Every trajectory of every sample (host arrays [K, N, ...]), in chunks of a fixed shape (the last one
    padded with copies of its first row); sample i's noise key is fold_in(key(seed), i)."""
    parts = []
    for start in range(0, len(inputs), chunk):
        x = np.asarray(inputs[start:start + chunk], np.int32)
        n = len(x)
        x = np.concatenate([x, np.repeat(x[:1], min(chunk, len(inputs)) - n, 0)])
        keys = indexed_keys(seed, np.arange(start, start + len(x)))
        t = predict_trajectories(p.model, p.params, x, trajectories=trajectories, noise_std=noise_std, rng=keys,
                                 max_recursion_depth=depth, compact=compact, noise_on=noise_on)
        parts.append(jax.tree.map(lambda a: np.asarray(a)[:, :n], t))
    return Trajectories(*(np.concatenate(a, axis=1) for a in zip(*parts)))


def scores(result: Trajectories, labels, k: int) -> dict:
    """Exact accuracy of the first k trajectories: chosen by the halting head, by vote, and 'any' right."""
    first = Trajectories(*(jnp.asarray(a[:k]) for a in result))
    exact = np.asarray(jax.vmap(lambda t: token_matches(t, jnp.asarray(labels))[2])(first.tokens))  # [k, N]
    out = {"any": float(exact.any(0).mean())}
    for select in ("halt", "vote"):
        index = np.asarray(chosen_index(first, select))
        out[select] = float(exact[index, np.arange(exact.shape[1])].mean())
    depth = np.asarray(first.recursion_depth)[np.asarray(chosen_index(first, "halt")), np.arange(exact.shape[1])]
    out["depth"] = float(depth.mean())
    return out


def _table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def tune(p, args) -> dict:
    sets = sudoku_sets(p, args.tune_num, TUNE_GIVENS, seed=TUNE_SEED)
    res, rows = {}, []
    for noise_on in args.tune_noise_on.split(","):
        for sigma in (float(v) for v in args.sigmas.split(",")):
            key = f"{noise_on} {sigma}"
            res[key] = {name: scores(run(p, x, trajectories=16, noise_std=sigma, noise_on=noise_on, **args.run_kw),
                                     y, 16) for name, (x, y) in sets.items()}
            mean = float(np.mean([r["halt"] for r in res[key].values()]))
            rows.append([noise_on, sigma] + [f"{r[s]:.3f}" for r in res[key].values() for s in ("halt", "vote")]
                        + [f"{mean:.3f}"])
            print(rows[-1], flush=True)
    plain = {name: scores(run(p, x, trajectories=1, noise_std=None, **args.run_kw), y, 1)["halt"]
             for name, (x, y) in sets.items()}
    header = ["noise on", "noise_std"] + [f"{n} {s}" for n in sets for s in ("halt", "vote")] + ["mean halt"]
    print("\nTuning sets (K=16; noiseless: " + ", ".join(f"{n} {a:.3f}" for n, a in plain.items()) + ")")
    print(_table(header, rows))
    best = max(res, key=lambda k: np.mean([r["halt"] for r in res[k].values()]))
    print(f"best: noise on {best.split()[0]}, noise_std {best.split()[1]}")
    return dict(results=res, noiseless=plain, best=best)


def test_sets(p, args) -> dict:
    sets = sudoku_sets(p, args.num, TEST_GIVENS)
    sets["Sudoku-Extreme sample"] = (lambda d: (d.inputs, d.labels))(dataset_for(p, SAMPLE))
    return sets


def main_table(p, args, sets) -> dict:
    res, rows = {}, []
    for name, (x, y) in sets.items():
        plain = scores(run(p, x, trajectories=1, noise_std=None, **args.run_kw), y, 1)
        every = run(p, x, trajectories=max(KS), noise_std=args.noise_std, noise_on=args.noise_on, **args.run_kw)
        res[name] = dict(noiseless=plain, **{str(k): scores(every, y, k) for k in KS})
        rows.append([name, f"{plain['halt']:.3f}"] + [f"{res[name][str(k)]['halt']:.3f} / {res[name][str(k)]['vote']:.3f}"
                                                     f" / {res[name][str(k)]['any']:.3f}" for k in KS])
        print(rows[-1], flush=True)
    print(f"\nExact accuracy, noise_std {args.noise_std} on {args.noise_on}; each cell: halting head / vote / any")
    print(_table(["set", "noiseless"] + [f"K={k}" for k in KS], rows))
    return res


def depth_table(p, args, sets) -> dict:
    res, rows = {}, []
    for depth in DEPTHS:
        for k in (1, 16):
            sigma = None if k == 1 else args.noise_std
            key = f"depth {depth} K={k}"
            res[key] = {name: scores(run(p, x, trajectories=k, noise_std=sigma, depth=depth, noise_on=args.noise_on,
                                         **args.run_kw), y, k) for name, (x, y) in sets.items()}
            rows.append([depth, k] + [f"{r['halt']:.3f} ({r['depth']:.1f})" for r in res[key].values()])
            print(rows[-1], flush=True)
    print(f"\nExact accuracy by max_recursion_depth (mean depth of the answer); K=16: noise_std {args.noise_std}, "
          "halting head")
    print(_table(["max depth", "K"] + list(sets), rows))
    return res


def time_table(p, args, sets) -> dict:
    x, y = (a[:args.time_num] for a in sets["30 givens"])
    settings = [(k, DEPTHS[0]) for k in KS] + [(k, d) for d in DEPTHS[1:] for k in (1, 16)]
    res, rows = {}, []
    for k, depth in settings:
        sigma = None if k == 1 else args.noise_std
        go = lambda: run(p, x, trajectories=k, noise_std=sigma, depth=depth, noise_on=args.noise_on, **args.run_kw)  # noqa: E731
        go()  # compile
        start = time.perf_counter()
        result = go()
        per_puzzle = (time.perf_counter() - start) / len(x)
        res[f"K={k} depth {depth}"] = dict(ms_per_puzzle=1e3 * per_puzzle, exact=scores(result, y, k)["halt"])
    base = res[f"K=1 depth {DEPTHS[0]}"]["ms_per_puzzle"]
    for name, r in res.items():
        rows.append([name, f"{r['ms_per_puzzle']:.2f}", f"{r['ms_per_puzzle'] / base:.1f}x", f"{r['exact']:.3f}"])
    print(f"\nTime per puzzle, 30 givens ({len(x)} puzzles, {jax.devices()[0].device_kind}); exact: halting head")
    print(_table(["setting", "ms / puzzle", "vs K=1", "exact"], rows))
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a Sudoku run directory (configs/sudoku_cpu.yaml)")
    ap.add_argument("--num", type=int, default=200, help="puzzles per generated test set")
    ap.add_argument("--tune-num", type=int, default=100, help="puzzles per tuning set")
    ap.add_argument("--sigmas", default=",".join(map(str, SIGMAS)), help="noise scales the tuning tries")
    ap.add_argument("--tune-noise-on", default="z", help="where the tuning adds noise: z, y, both (comma list)")
    ap.add_argument("--time-num", type=int, default=32, help="puzzles timed per setting")
    ap.add_argument("--parts", default="tune,main,depth,time")
    ap.add_argument("--noise-std", type=float, default=None, help="default: tuned, else the package default")
    ap.add_argument("--noise-on", choices=NOISE_ON, default=None, help="default: tuned, else the package default")
    ap.add_argument("--chunk", type=int, default=64, help="samples per predict call")
    ap.add_argument("--no-compact", action="store_true", help="one while_loop per call (faster on a GPU)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.run_kw = dict(chunk=args.chunk, compact=not args.no_compact)
    parts = args.parts.split(",")
    p = trm_jax.load(args.run)
    out = dict(run=args.run, step=p.step, num=args.num, device=jax.devices()[0].device_kind)
    if "tune" in parts:
        out["tune"] = tune(p, args)
        noise_on, noise_std = out["tune"]["best"].split()
        args.noise_on = args.noise_on or noise_on
        args.noise_std = float(noise_std) if args.noise_std is None else args.noise_std
    args.noise_on = args.noise_on or DEFAULT_NOISE_ON
    args.noise_std = DEFAULT_NOISE_STD if args.noise_std is None else args.noise_std
    out.update(noise_std=args.noise_std, noise_on=args.noise_on)
    sets = test_sets(p, args) if {"main", "depth", "time"} & set(parts) else {}
    for part, fn in (("main", main_table), ("depth", depth_table), ("time", time_table)):
        if part in parts:
            out[part] = fn(p, args, sets)
        write_json(args.json, out)  # after every part: a run cut short keeps what it measured
    return out


if __name__ == "__main__":
    from scripts.launcher import launch

    launch(main)
