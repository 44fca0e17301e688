"""Write the API reference pages (docs/api/*.md): every name of `trm_jax.__all__`, on the page of its area.

    python scripts/api_reference.py            # rewrite docs/api/
    python scripts/api_reference.py --check    # exit 1 when a page is out of date or a public name is unplaced
    python scripts/api_reference.py --stdout   # print the pages

Each page is one `::: trm_jax.<name>` entry per name, which mkdocstrings renders from the docstring (signature,
Args/Returns/Raises, source) under the anchor `trm_jax.<name>`; docs/griffe_lazy_exports.py lets it find the
names `trm_jax/__init__.py` resolves lazily. AREAS below places each public name on one page: a name added to
`trm_jax.__all__` makes --check (and tests/test_docs.py) fail until it is placed here.
"""

import argparse
import os
import sys
from typing import NamedTuple

import trm_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_DIR = os.path.join(ROOT, "docs", "api")


class Area(NamedTuple):
    """One page of the reference: docs/api/<slug>.md, titled `title`. `names` are public names
    (`trm_jax.<name>`); a dotted name (`tasks.get_task`) documents `trm_jax.<dotted name>`, a name that
    belongs with the area though it is not exported at the top level."""
    slug: str
    title: str
    intro: str
    names: tuple


AREAS = (
    Area("model", "Model and networks",
         "The recursive model, the networks it refines with, and its pure functions of `(params, inputs)`; "
         "guide: [Porting from tiny-recursive-model](../porting.md).",
         ("TinyRecursiveModel", "MLPMixer1D", "TransformerNetwork", "make_model", "create_model", "init_params",
          "initial_carry", "supervision_step", "compute_loss")),
    Area("training", "Training",
         "Training a model from arrays or from a config, its callbacks, curriculum, logs and metric plots; "
         "guide: [Training](../training.md).",
         ("Trainer", "TrainResult", "create_trainer", "Callback", "CurriculumScheduler",
          "TRMTrainingLogger", "ResourceMonitor", "plot_metrics")),
    Area("inference", "Inference and test-time compute",
         "Loading a run, answering queries, evaluating, and spending more compute at test time (noisy "
         "trajectories, deeper recursion, adaptation to unseen puzzles); guides: "
         "[After training](../after-training.md), [Test-time compute](../test-time-compute.md), "
         "[Adaptation](../adaptation.md).",
         ("load", "infer", "TRMParams", "predict", "evaluate", "adapt", "adapt_puzzle_embeddings",
          "save_adapted_run")),
    Area("visualization", "Traces and pictures",
         "The recursion of one query step by step and its pictures (PNG strip, GIF, inline in notebooks); "
         "guide: [Watching the recursion](../visualization.md).",
         ("trace", "Trace", "plot_trace")),
    Area("tasks", "Tasks and data",
         "What differs between tasks (code with retrieval, Sudoku, mazes, ARC, JSONL), found through one "
         "registry, and the text helpers every task shares; guide: [Tasks and data](../tasks-and-data.md).",
         ("tasks.get_task", "tasks.task_class", "tasks.Task", "load_tokenizer", "create_tokenizer", "tokenize_and_pad",
          "pad_sequence", "prepare_code_input")),
    Area("retrieval", "Retrieval (RAG)",
         "Embedders, the NumPy vector store, the retriever and the dataset wrapper that adds retrieved "
         "context; guide: [Retrieval (RAG)](../rag.md).",
         ("build_rag", "TextEmbedder", "MemoryVectorStore", "RAGRetriever", "RAGDatasetWrapper")),
    Area("checkpoints", "Checkpoints and pretrained weights",
         "Saving a model to share, the models shipped with the package, and importing PyTorch "
         "(`tiny-recursive-model`) and official TRM checkpoints; loading is `trm_jax.load` ([Inference](inference.md)); guides: "
         "[After training](../after-training.md), [Official model and recipe](../official.md).",
         ("save_pretrained", "pretrained_models", "from_torch_state_dict", "config_from_torch_state_dict",
          "from_official_checkpoint")),
    Area("config", "Config and errors",
         "The config tree, its YAML loader with `--set` overrides, and the exceptions a user's mistake raises; "
         "every key with its default: [Config reference](../config-reference.md).",
         ("load_config", "TRMConfig", "ModelConfig", "CurriculumStage", "TRMError", "ConfigError")),
)


def placement() -> dict:
    """{public name: the slug of its page}; TRMError names every name unplaced, placed twice, or not public."""
    placed = [name for area in AREAS for name in area.names if "." not in name]
    public = set(trm_jax.__all__)
    problems = []
    if twice := sorted({n for n in placed if placed.count(n) > 1}):
        problems.append(f"placed twice: {twice}")
    if unplaced := sorted(public - set(placed)):
        problems.append(f"in trm_jax.__all__ but on no page (add each to an area of AREAS): {unplaced}")
    if gone := sorted(set(placed) - public):
        problems.append(f"placed but not in trm_jax.__all__ (remove from AREAS): {gone}")
    if problems:
        raise trm_jax.TRMError(f"scripts/api_reference.py: {'; '.join(problems)}")
    return {name: area.slug for area in AREAS for name in area.names if "." not in name}


def _entry_link(name: str) -> str:
    return f"[`{name}`][trm_jax.{name}]"  # autorefs: the anchor mkdocstrings gives the entry, on whichever page


def pages() -> dict:
    """{file name under docs/api/: text} for every area and the index."""
    placement()
    out = {}
    index = ["# API reference", "",
             "Every public name of `trm_jax`, one page per area. Each entry shows the signature, the docstring "
             "and the source; `import trm_jax` is light (training, retrieval and plotting load on first use).",
             "", "These pages are generated by `python scripts/api_reference.py` from `trm_jax.__all__`; the "
             "text comes from the docstrings.", ""]
    for area in AREAS:
        index += [f"## [{area.title}]({area.slug}.md)", "", area.intro, "",
                  ", ".join(_entry_link(name) for name in area.names), ""]
        lines = [f"# {area.title}", "", area.intro, ""]
        for name in area.names:
            lines += [f"::: trm_jax.{name}", ""]
        out[f"{area.slug}.md"] = "\n".join(lines)
    out["index.md"] = "\n".join(index)
    return out


def stale() -> list:
    """Paths under docs/api/ that differ from the generated pages, are missing, or are no page of it."""
    wanted = pages()
    present = set(os.listdir(API_DIR)) if os.path.isdir(API_DIR) else set()
    out = [f for f in sorted(present - set(wanted)) if f.endswith(".md")]
    for name, text in wanted.items():
        path = os.path.join(API_DIR, name)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            out.append(name)
    return [os.path.join("docs", "api", name) for name in out]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write docs/api/*.md from trm_jax.__all__ and the areas.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a page is out of date")
    mode.add_argument("--stdout", action="store_true", help="print the pages instead of writing them")
    args = ap.parse_args(argv)
    try:
        placement()
    except trm_jax.TRMError as e:
        print(e, file=sys.stderr)
        return 1
    if args.stdout:
        for name, text in pages().items():
            sys.stdout.write(f"--- docs/api/{name}\n{text}")
        return 0
    if args.check:
        if out_of_date := stale():
            print(f"out of date: {out_of_date}: run python scripts/api_reference.py", file=sys.stderr)
            return 1
        return 0
    wanted = pages()
    os.makedirs(API_DIR, exist_ok=True)
    for name in stale():
        path, page = os.path.join(ROOT, name), wanted.get(os.path.basename(name))
        if page is None:  # an area that is gone
            os.remove(path)
            print(f"removed {name}")
            continue
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
