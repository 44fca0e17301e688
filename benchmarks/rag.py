"""Search-throughput benchmark of `MemoryVectorStore` against faiss `IndexFlatIP`.

Both do exact inner-product search over the same random unit vectors in the same
process; the printed ratio is ours / faiss in queries per second (> 1 = we are faster).
Run through `python scripts/benchmark.py rag`; this module is that subcommand (arguments and run).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from benchmarks.harness import best_time
from trm_jax.rag.store import MemoryVectorStore


def add_rag_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-vectors", type=int, default=100_000, help="stored vectors (default 100000)")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    parser.add_argument("--k", type=int, default=10, help="top-k (default 10)")
    parser.add_argument("--batch", type=int, default=1000, help="queries per batched search (default 1000)")
    parser.add_argument("--single", type=int, default=200, help="single-query searches timed (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported (default 3)")
    parser.add_argument("--seed", type=int, default=0)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of the top-k ids two methods share (1.0 = identical sets)."""
    return float(np.mean([len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b)]))


def bench_rag(args: argparse.Namespace) -> dict:
    """Time batched and single-query top-k search; print a table and return the numbers."""
    rng = np.random.default_rng(args.seed)
    print(f"rag search benchmark: {args.num_vectors} x {args.dim} float32 unit vectors, k={args.k}, "
          f"batched {args.batch} queries, {args.single} single queries, best of {args.repeats}, "
          f"{os.cpu_count()} CPUs")
    db = _unit(rng, args.num_vectors, args.dim)
    queries = _unit(rng, max(args.batch, args.single), args.dim)
    batch_q, single_q = queries[: args.batch], queries[: args.single]

    store = MemoryVectorStore(args.dim)
    store.add(db, [""] * args.num_vectors)  # texts unused by topk; empty strings keep memory low

    def ours_batched():
        return store.topk(batch_q, args.k)

    def ours_single():
        for q in single_q:
            store.topk(q[None, :], args.k)

    results = {"num_vectors": args.num_vectors, "dim": args.dim, "k": args.k}
    results["ours_batched_qps"] = args.batch / best_time(ours_batched, args.repeats)
    results["ours_single_qps"] = args.single / best_time(ours_single, args.repeats)

    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is None:
        print("faiss is not installed (pip install faiss-cpu): reporting our numbers only")
    else:
        index = faiss.IndexFlatIP(args.dim)
        index.add(db)

        def faiss_batched():
            return index.search(batch_q, args.k)

        def faiss_single():
            for q in single_q:
                index.search(q[None, :], args.k)

        results["faiss_batched_qps"] = args.batch / best_time(faiss_batched, args.repeats)
        results["faiss_single_qps"] = args.single / best_time(faiss_single, args.repeats)
        results["batched_ratio"] = results["ours_batched_qps"] / results["faiss_batched_qps"]
        results["single_ratio"] = results["ours_single_qps"] / results["faiss_single_qps"]
        results["topk_agreement"] = _agreement(store.topk(batch_q, args.k)[1], index.search(batch_q, args.k)[1])
        results["faiss_threads"] = faiss.omp_get_max_threads()

    print(f"{'mode':<10}{'ours q/s':>14}{'faiss q/s':>14}{'ours/faiss':>12}")
    for mode in ("batched", "single"):
        ours = results[f"ours_{mode}_qps"]
        ref = results.get(f"faiss_{mode}_qps")
        ref_s = f"{ref:14.1f}" if ref else f"{'-':>14}"
        ratio = f"{results[f'{mode}_ratio']:12.2f}" if ref else f"{'-':>12}"
        print(f"{mode:<10}{ours:14.1f}{ref_s}{ratio}")
    if "topk_agreement" in results:
        print(f"top-{args.k} agreement with faiss: {results['topk_agreement']:.4f}")
    return results
