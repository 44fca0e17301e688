#!/usr/bin/env python
"""Code task with and without RAG at the same training budget, plus retrieval hit rate.

    python scripts/rag_experiment.py [--config base.yaml] [--set training.steps=2000 ...]
        [--variants none,rag,oracle] [--embedder sentence-transformers] [--top-k 1]
        [--out runs/rag_experiment] [--hit-rate-only]

1. Hit rate: the fraction of samples whose needed fact (the sample's "fact") is among
   the top-k retrieved documents, for each embedder in --hit-embedders, on the train
   and held-out splits. Needs only the data and RAG packages.
2. Accuracy: one training run per variant with the same config apart from the context:
   none   - the query alone (the model can only guess held-out facts),
   rag    - rag.enabled: the retrieved top-k facts as context,
   oracle - the needed fact as context (data.code_context=oracle): the upper bound.
   Held-out exact accuracy is read from the trainer's final eval, and again after
   `trm_jax.inference.load(run_dir)` (which restores the saved RAG store) to check
   that a reloaded run retrieves and scores the same way.
Results go to OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder model is local; never reach for the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from trm_jax.config import load_config  # noqa: E402
from trm_jax.errors import TRMError  # noqa: E402
from trm_jax.tasks import get_task  # noqa: E402
from trm_jax.tasks.code.task import CodeTask  # noqa: E402

log = logging.getLogger("rag_experiment")

VARIANTS = ("none", "rag", "oracle")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="base YAML config (default: built-in defaults, code task)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set training.steps=2000 (repeatable)")
    p.add_argument("--variants", default="none,rag,oracle", help="comma-separated subset of none,rag,oracle")
    p.add_argument("--embedder", default=None, choices=["sentence-transformers", "hashing"],
                   help="embedder of the rag variant (default: rag.embedder of the config)")
    p.add_argument("--top-k", type=int, default=None, help="retrieved facts per sample (default: rag.top_k)")
    p.add_argument("--hit-embedders", default="hashing,sentence-transformers",
                   help="embedders whose hit rate is measured (comma-separated)")
    p.add_argument("--hit-k", default="1,2,4", help="k values for hit rate (comma-separated)")
    p.add_argument("--hit-rate-only", action="store_true", help="measure retrieval hit rate only, no training")
    p.add_argument("--out", default="runs/rag_experiment", help="output folder (one run dir per variant inside)")
    return p.parse_args(argv)


def base_config(args):
    cfg = load_config(args.config, args.overrides)
    if not isinstance(get_task(cfg), CodeTask):  # its samples name the fact they need: hit rate, oracle variant
        raise TRMError(f"the RAG experiment runs on the code task; got data.task={cfg.data.task!r}")
    rag = cfg.rag
    if args.embedder is not None:
        rag = dataclasses.replace(rag, embedder=args.embedder)
    if args.top_k is not None:
        rag = dataclasses.replace(rag, top_k=args.top_k)
    return cfg.replace(rag=dataclasses.replace(rag, enabled=False),
                       data=cfg.data.replace(code_context="none"))


def hit_rates(cfg, embedders, ks) -> dict:
    """{embedder: {split: {"hit@k": rate}, "index_time_s": t}} over the code task's train and eval samples."""
    out = {}
    kmax = max(ks)
    for emb in embedders:
        t0 = time.time()
        retriever = get_task(cfg.replace(rag=dataclasses.replace(cfg.rag, enabled=True, embedder=emb))).retriever()
        res = {"embedder": retriever.embedder.description(), "index_time_s": time.time() - t0,
               "documents": len(retriever)}
        for split in ("train", "eval"):
            samples = get_task(cfg).samples(split)
            t0 = time.time()
            hits = retriever.retrieve_many([s["query"] for s in samples], kmax)
            res[split] = {f"hit@{k}": sum(s["fact"] in [t for t, _ in row[:k]] for s, row in zip(samples, hits))
                          / max(len(samples), 1) for k in ks}
            res[split]["samples"] = len(samples)
            res[split]["retrieve_time_s"] = time.time() - t0
        out[emb] = res
        log.info("hit rate %s: %s", emb, {s: res[s] for s in ("train", "eval")})
    return out


def variant_config(cfg, variant: str, out: str):
    run_dir = os.path.join(out, variant)
    if variant == "none":
        return cfg.replace(run_dir=run_dir)
    if variant == "rag":
        return cfg.replace(run_dir=run_dir, rag=dataclasses.replace(cfg.rag, enabled=True))
    if variant == "oracle":
        return cfg.replace(run_dir=run_dir, data=cfg.data.replace(code_context="oracle"))
    raise TRMError(f"unknown variant {variant!r}; use {', '.join(VARIANTS)}")


def train_variant(cfg) -> dict:
    from trm_jax.evaluation import evaluate
    from trm_jax.inference import load
    from trm_jax.training import create_trainer

    if os.path.exists(cfg.run_dir) and os.listdir(cfg.run_dir):
        raise TRMError(f"{cfg.run_dir} already holds a run; pass another --out or delete it")
    trainer = create_trainer(cfg)
    try:
        result = trainer.train()
    finally:
        trainer.close()
    reloaded = evaluate(load(cfg.run_dir))  # through the saved checkpoint, tokenizer and RAG store
    return {"run_dir": cfg.run_dir, "steps": result.step, "wall_time_s": result.wall_time_s,
            "exact_accuracy": result.eval.get("exact_accuracy"), "token_accuracy": result.eval.get("token_accuracy"),
            "recursion_depth": result.eval.get("recursion_depth"), "num_eval": result.eval.get("num_samples"),
            "reloaded_exact_accuracy": reloaded["exact_accuracy"]}


def markdown(results: dict) -> str:
    cfg = results["config"]
    lines = []
    if results.get("hit_rate"):
        ks = results["hit_k"]
        lines += ["Retrieval hit rate (needed fact in top-k), code task "
                  f"({results['hit_rate'][next(iter(results['hit_rate']))]['documents']} facts indexed):", "",
                  "| embedder | split | " + " | ".join(f"hit@{k}" for k in ks) + " |",
                  "|---|---|" + "---|" * len(ks)]
        for emb, res in results["hit_rate"].items():
            for split in ("train", "eval"):
                lines.append(f"| {emb} | {split} ({res[split]['samples']}) | "
                             + " | ".join(f"{res[split][f'hit@{k}']:.3f}" for k in ks) + " |")
        lines.append("")
    if results.get("runs"):
        lines += [f"Held-out exact accuracy, same budget ({cfg['training']['steps']} steps, batch "
                  f"{cfg['training']['batch_size']}, {cfg['model']['network']} dim {cfg['model']['dim']}, "
                  f"seq_len {cfg['data']['seq_len']}, difficulty {cfg['data']['difficulty']}; RAG: "
                  f"{cfg['rag']['embedder']}, top_k {cfg['rag']['top_k']}):", "",
                  "| context | exact acc. | token acc. | after load() | train time |", "|---|---|---|---|---|"]
        for name, r in results["runs"].items():
            lines.append(f"| {name} | {r['exact_accuracy']:.4f} | {r['token_accuracy']:.4f} | "
                         f"{r['reloaded_exact_accuracy']:.4f} | {r['wall_time_s']:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    cfg = base_config(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise TRMError(f"unknown variant {v!r}; use a comma-separated subset of {','.join(VARIANTS)}")
    ks = sorted({int(k) for k in args.hit_k.split(",")})
    os.makedirs(args.out, exist_ok=True)
    results = {"config": cfg.to_dict(), "hit_k": ks,
               "hit_rate": hit_rates(cfg, [e.strip() for e in args.hit_embedders.split(",") if e.strip()], ks)}
    if not args.hit_rate_only:
        results["runs"] = {}
        for v in variants:
            log.info("training variant %r", v)
            results["runs"][v] = train_variant(variant_config(cfg, v, args.out))
            with open(os.path.join(args.out, "results.json"), "w") as f:  # partial results survive a crash
                json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = markdown(results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    from launcher import launch

    launch(main)
