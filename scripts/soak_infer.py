"""Soak test: many consecutive `infer` calls of mixed lengths; prints the RSS curve.

  python scripts/soak_infer.py --run RUN_DIR [--calls 1000] [--json out.json]

Memory must stay flat: inputs are padded to the model's seq_len and batches to power-of-two
buckets, so after warm-up no call compiles anything or keeps buffers alive. Compilations are counted
as JAX reports them (`jax.monitoring`: every program lowered for XLA, whatever the cache then does).
"""

import argparse
import json
import os
import random


def rss_mb() -> float:
    import psutil
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


LOWERING = "/jax/core/compile/jaxpr_to_mlir_module_duration"  # JAX's event for each program it lowers


def soak(run_dir: str, calls: int, seed: int = 0, report_every: int = 100) -> dict:
    import jax

    from trm_jax.inference import infer, load

    params = load(run_dir)
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789()+-*= "

    def text():
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3 * params.seq_len))).strip() or "a"

    for n in (1, 2, 4, 8, 16):  # warm-up: compile every bucket used below once
        infer(params, [text() for _ in range(n)])
    lowered = []

    def on_event(event, seconds, **info):
        if event == LOWERING:
            lowered.append(info.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        curve = [(0, rss_mb())]
        for i in range(1, calls + 1):
            batch = [text() for _ in range(rng.choice((1, 1, 1, 2, 3, 5, 8, 13)))]
            out = infer(params, batch if len(batch) > 1 else batch[0])
            assert isinstance(out, (str, list))
            if i % report_every == 0:
                curve.append((i, rss_mb()))
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    return dict(calls=calls, rss_mb=curve, growth_mb=curve[-1][1] - curve[0][1], new_compilations=len(lowered),
                compiled_after_warmup=sorted(set(lowered)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import logging
    logging.disable(logging.WARNING)  # truncation warnings for the long random texts are expected
    res = soak(args.run, args.calls, report_every=max(args.calls // 10, 1))
    for i, mb in res["rss_mb"]:
        print(f"after {i:5d} calls: RSS {mb:8.1f} MiB")
    print(f"growth {res['growth_mb']:+.1f} MiB, new compilations after warm-up: {res['new_compilations']}"
          + (f" ({', '.join(res['compiled_after_warmup'])})" if res["new_compilations"] else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["new_compilations"] == 0 else 1


if __name__ == "__main__":
    from launcher import launch

    launch(main)
