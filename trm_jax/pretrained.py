"""Pretrained directories, the shareable form of a trained model: `save_pretrained` writes one (safetensors
weights, config.json, tokenizer, RAG store, a model card) and `read_pretrained` reads one back, local or
`hf://user/repo[@revision]` through the Hugging Face cache, for `trm_jax.load`. The models shipped with the
package live in trm_jax/pretrained/<name>/ (package data, no `__init__.py`: `trm_jax.pretrained` stays this
module), loaded by name (`trm_jax.load("sudoku")`, `pretrained_models()`).

Layout (format "trm_jax.pretrained", version 1):

    model.safetensors   the weights, named by their parameter path joined with "." (float32 or bfloat16)
    config.json         {"format", "format_version", "weights": {file, dtype, sha256, num_parameters}, "step",
                        "metrics", "training" (how to train it again, or null), "files" (what the save wrote),
                        "config": the run's TRMConfig with the final model (dim, num_tokens, seq_len)}
    tokenizer/          the run's tokenizer (trm_jax.data.save_tokenizer), when it has one
    rag/                the run's retrieval store, when it retrieves
    README.md           the model card
    (the task's files)  what test-time adaptation added (TRMParams.adaptation.save), e.g. ARC's adapted tasks
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Mapping, Optional

import jax
import ml_dtypes
import numpy as np

from trm_jax.config import DEFAULT_TASK, TRMConfig
from trm_jax.data.tokenizers import is_saved_tokenizer, load_tokenizer, save_tokenizer
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models import PUZZLE_EMB, model_config
from trm_jax.rag import RAG_SUBDIR, load_run_retriever
from trm_jax.tasks import get_task, task_class
from trm_jax.training import TrainResult, read_metrics
from trm_jax.training.run_dir import CHECKPOINT_DIR, METRICS_FILE, RUN_CONFIG_FILE, TOKENIZER_DIR

logger = logging.getLogger(__name__)

FORMAT = "trm_jax.pretrained"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
PRETRAINED_CONFIG_FILE = "config.json"  # a run directory's config is RUN_CONFIG_FILE (config.yaml)
CARD_FILE = "README.md"
HUB_PREFIX = "hf://"
DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
_HUB_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")  # the shipped models
TRAINING_KEYS = ("name", "command", "config", "steps", "wall_time_s")  # save_pretrained(training=...)


@dataclasses.dataclass
class Pretrained:
    """What a pretrained directory holds, read back: `params` is the nested weight tree (float32 NumPy)."""

    directory: str
    config: TRMConfig
    params: dict
    tokenizer: Any
    retriever: Any
    step: Optional[int]
    metrics: Optional[dict]  # {"source", "step", "values"} (metrics_record) or None


# ------------------------------------------------------------------------------------------------- save

def save_pretrained(params, directory, *, dtype: str = "float32", metrics: Optional[Mapping] = None,
                    metrics_source: Optional[str] = None, training: Optional[Mapping] = None) -> str:
    """Write a trained model as a pretrained directory.

    `trm_jax.load(directory)` reads it back and `hf upload user/repo directory` shares it. Files of ours
    already in `directory` are replaced; anything else there (e.g. a clone's .git) is kept.

    Args:
        params: A `TRMParams` (`trm_jax.load(run_dir)`) or a `TrainResult` (`Trainer.train()`).
        directory: Where to write; not a run directory.
        dtype: "float32" (exact) or "bfloat16" (half the file; every weight rounded once, loaded as
            float32).
        metrics: The held-out numbers for the model card; None = the run's `eval_results.json`, else its
            last evaluation in `metrics.jsonl`.
        metrics_source: How `metrics` were measured (the card says it).
        training: How to train the model again, for the card: any of "name" (a shipped model's name),
            "command", "config" (its config file), "steps", "wall_time_s" (scripts/ship_pretrained.py
            fills them).

    Returns:
        The directory's absolute path.

    Raises:
        TRMError: `params` is not a TRMParams or TrainResult, or its network is user-defined (no config
            rebuilds it); a bad `dtype`, `metrics` or `training`; `directory` is a run directory or a
            file; or the model retrieves (`rag.enabled`) but has no retriever to save.
    """
    if dtype not in DTYPES:
        raise TRMError(f"save_pretrained: dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    src = _saved_model(params)
    directory = os.path.abspath(os.fspath(directory))
    if (os.path.isfile(os.path.join(directory, RUN_CONFIG_FILE))
            or os.path.isdir(os.path.join(directory, CHECKPOINT_DIR))):
        raise TRMError(f"{directory} is a run directory; pass a new directory to save_pretrained")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise TRMError(f"{directory} is a file; pass a directory to save_pretrained")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise TRMError(f"save_pretrained: metrics must be a dict of held-out numbers, got {type(metrics).__name__}")
    card_metrics = (metrics_record(metrics, metrics_source or "save_pretrained(metrics=...)", src.step)
                    if metrics is not None else src.metrics)
    if training is not None and (not isinstance(training, Mapping) or set(training) - set(TRAINING_KEYS)):
        raise TRMError(f"save_pretrained: training must be a dict with keys among {TRAINING_KEYS}, got {training!r}")
    training = dict(training) if training is not None else None
    if src.config.rag.enabled and src.retriever is None:
        raise TRMError("save_pretrained: the model was trained with retrieval (rag.enabled) but has no retriever to "
                       "save; load it with trm_jax.load(run_dir), which restores the run's store")
    tensors = _flatten(src.params, DTYPES[dtype])
    num_parameters = sum(int(a.size) for a in tensors.values())
    os.makedirs(directory, exist_ok=True)
    # written into a staging folder first: a save that fails (disk full, a bad store) leaves an earlier
    # save in `directory` as it was, also when it is the model being re-saved
    staging = tempfile.mkdtemp(prefix=".save_pretrained-", dir=directory)
    try:
        weights = os.path.join(staging, WEIGHTS_FILE)
        _save_tensors(tensors, weights)
        if src.tokenizer is not None:
            save_tokenizer(src.tokenizer, os.path.join(staging, TOKENIZER_DIR))
        if src.retriever is not None:
            src.retriever.save(os.path.join(staging, RAG_SUBDIR))
        if src.adaptation is not None:  # the task's record of adapted puzzles, read back by Task.load_adaptation
            src.adaptation.save(staging)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "weights": {"file": WEIGHTS_FILE, "dtype": dtype, "sha256": _sha256(weights),
                            "num_parameters": num_parameters},
                "step": src.step, "metrics": card_metrics, "training": training,
                "files": sorted(set(os.listdir(staging)) | {PRETRAINED_CONFIG_FILE, CARD_FILE}),
                "config": src.config.to_dict()}
        _write_text(os.path.join(staging, PRETRAINED_CONFIG_FILE), json.dumps(meta, indent=1) + "\n")
        table = int(np.size(src.params[PUZZLE_EMB])) if PUZZLE_EMB in src.params else 0
        _write_text(os.path.join(staging, CARD_FILE),
                    model_card(src.config, num_parameters, table, dtype, src.step, card_metrics, src.retriever,
                               training))
        _remove_earlier_save(directory)  # a model saved over another must not keep its tokenizer, store or adaptation
        for name in os.listdir(staging):
            os.replace(os.path.join(staging, name), os.path.join(directory, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _remove_earlier_save(directory: str) -> None:
    """Remove what an earlier save_pretrained wrote into `directory` (the files its config.json lists)."""
    names = {WEIGHTS_FILE, PRETRAINED_CONFIG_FILE, CARD_FILE, TOKENIZER_DIR, RAG_SUBDIR}
    try:
        with open(os.path.join(directory, PRETRAINED_CONFIG_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        if isinstance(meta, dict) and meta.get("format") == FORMAT:
            names |= {n for n in meta.get("files", ())
                      if isinstance(n, str) and n == os.path.basename(n) and n not in ("", ".", "..")}
    except (OSError, ValueError):
        pass  # no earlier save, or not one of ours: only our own names are replaced
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


@dataclasses.dataclass
class _Saved:
    params: Any
    config: TRMConfig
    tokenizer: Any
    retriever: Any
    step: Optional[int]
    metrics: Optional[dict]
    adaptation: Any = None  # TRMParams.adaptation: what test-time adaptation added (it has save(directory))


def _saved_model(p) -> _Saved:
    """What to save of a TRMParams or a TrainResult, with the config of the final model (curriculum stages
    can change dim and seq_len; num_tokens may have come from the tokenizer)."""
    if isinstance(p, TrainResult):
        cfg = model_config(p.model)
        if cfg is None:
            raise TRMError("save_pretrained: this model's network is user-defined, so no config rebuilds it; "
                           "a pretrained directory needs a network of trm_jax (MLPMixer1D or TransformerNetwork)")
        config = p.config.replace(model=cfg, data=dataclasses.replace(p.config.data, seq_len=p.model.token_len))
        retriever = load_run_retriever(p.run_dir, config) if os.path.isdir(p.run_dir or "") else None
        metrics = _run_metrics(p.run_dir, p.step) or (metrics_record(p.eval, "the run's final evaluation", p.step)
                                                      if p.eval else None)
        return _Saved(p.params, config, p.tokenizer, retriever, p.step, metrics)
    if not all(hasattr(p, a) for a in ("params", "config", "num_tokens", "seq_len", "tokenizer", "retriever")):
        raise TRMError(f"save_pretrained takes what trm_jax.load(run_dir) or Trainer.train() returned, got "
                       f"{type(p).__name__}; wrap raw params with trm_jax.inference.as_trm_params(params, config=...)")
    config = p.config.replace(model=dataclasses.replace(p.config.model, num_tokens=int(p.num_tokens)),
                              data=dataclasses.replace(p.config.data, seq_len=int(p.seq_len)))
    step = getattr(p, "step", None)
    return _Saved(p.params, config, p.tokenizer, p.retriever, step, _run_metrics(getattr(p, "run_dir", None), step),
                  getattr(p, "adaptation", None))


def _flatten(params, dtype: np.dtype) -> dict[str, np.ndarray]:
    """{"network.block0_token_norm": array, ...}: parameter paths joined with "." (the Hugging Face naming),
    cast to `dtype`."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [getattr(k, "key", None) for k in path]
        if any(not isinstance(k, str) or not k or "." in k for k in keys):
            raise TRMError(f"save_pretrained: parameter {jax.tree_util.keystr(path)} is not a path of plain names "
                           "(nested dicts with string keys without '.'), so it has no tensor name")
        arr = np.asarray(jax.device_get(leaf))
        if not np.issubdtype(arr.dtype, np.floating):
            raise TRMError(f"save_pretrained: parameter {jax.tree_util.keystr(path)} is {arr.dtype}; a pretrained "
                           "directory holds floating-point weights")
        out[".".join(keys)] = np.ascontiguousarray(arr.astype(dtype))
    return out


def _save_tensors(tensors: dict, path: str) -> None:
    from safetensors.numpy import save_file  # optional at import: only saving and loading weights need it

    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(tensors, tmp, metadata={"format": "flax", "trm_jax_format_version": str(FORMAT_VERSION)})
    os.replace(tmp, path)


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def metrics_record(values: Optional[Mapping], source: str, step: Optional[int] = None) -> dict:
    """{"source", "step", "values"}: the top-level numbers of a results dict (nested tables such as
    by_difficulty left out), where they come from and the step they were measured at."""
    # durations (eval_time_s) describe the machine, not the model
    numbers = {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in (values or {}).items()
               if isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
               and not str(k).endswith("_s")}
    return {"source": source, "step": step, "values": numbers}


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _run_metrics(run_dir: Optional[str], step: Optional[int]) -> Optional[dict]:
    """The held-out numbers a run directory (or a pretrained one) records: scripts/evaluate.py's
    eval_results.json, else the evaluation in metrics.jsonl at `step` (or the last one); None without any."""
    if not run_dir or not os.path.isdir(run_dir):
        return None
    results = os.path.join(run_dir, "eval_results.json")
    raw = _read_json(results) if os.path.isfile(results) else None
    if isinstance(raw, dict):  # an unreadable results file is skipped: the card is built from what else there is
        return metrics_record({k: v for k, v in raw.items() if k != "step"},
                                f"scripts/evaluate.py on {raw.get('data', 'the eval split')}", raw.get("step"))
    log = os.path.join(run_dir, METRICS_FILE)
    if os.path.isfile(log):
        evals = read_metrics(log, split="eval")
        if evals:
            record = next((r for r in evals if r.get("step") == step), evals[-1])
            return metrics_record({k: v for k, v in record.items() if k not in ("step", "stage", "timestamp")},
                                    "the run's evaluation during training (metrics.jsonl)", record.get("step"))
    pretrained = os.path.join(run_dir, PRETRAINED_CONFIG_FILE)
    if os.path.isfile(pretrained):  # a pretrained directory saved again (e.g. as bfloat16) keeps its numbers
        meta = _read_json(pretrained)
        if isinstance(meta, dict) and meta.get("format") == FORMAT and isinstance(meta.get("metrics"), dict):
            return meta["metrics"]
    return None


# ------------------------------------------------------------------------------------------- model card

def model_card(config: TRMConfig, num_parameters: int, table_size: int, dtype: str, step: Optional[int],
               metrics: Optional[dict], retriever=None, training: Optional[Mapping] = None) -> str:
    """README.md of a pretrained directory: front matter as Hugging Face model cards have, the architecture,
    the task, the held-out metrics, how it was trained (when `training` says) and how to load it. The
    numbers are also in config.json ("metrics"), which `pretrained_models()` reads."""
    m, task = config.model, config.data.task
    tags = ["trm_jax", "jax", "flax", "tiny-recursive-model", _tag(task)]
    lines = ["---", "library_name: trm_jax", "tags:", *[f"- {t}" for t in tags], "---", "",
             f"# Tiny Recursive Model: {task} task", "",
             f"A Tiny Recursive Model (TRM, \"Less is More: Recursive Reasoning with Tiny Networks\", 2025) trained "
             f"with trm_jax on the `{task}` task: a {m.depth}-layer {m.network} network of "
             f"width {m.dim} ({m.variant} variant), applied {m.num_latent_refinements} times to the latent and once "
             f"to the answer per cycle, {m.num_refinement_blocks} cycles per supervision step, at most "
             f"{m.max_recursion_depth} supervision steps with learned halting.", "",
             "| | |", "|---|---|",
             f"| parameters | {num_parameters:,}" + (f" ({table_size:,} in the puzzle-embedding table)" if table_size
                                                     else "") + " |",
             f"| sequence length | {config.data.seq_len} tokens |",
             f"| vocabulary | {m.num_tokens} tokens |",
             f"| trained steps | {step if step is not None else 'unknown'} |",
             f"| weights | `{WEIGHTS_FILE}`, {dtype} |"]
    if retriever is not None:
        lines.append(f"| retrieval | {len(retriever.store)} texts in `{RAG_SUBDIR}/`, top {config.rag.top_k} per "
                     f"query, {config.rag.embedder} embedder |")
    lines += ["", "## Task", "", _task_summary(config)]
    options = dataclasses.asdict(get_task(config).options)
    if options:
        lines += ["", "| task setting | value |", "|---|---|", *[f"| `data.{k}` | `{v}` |" for k, v in options.items()]]
    lines += ["", "## Held-out metrics", ""]
    if metrics and metrics.get("values"):
        at = f" at step {metrics['step']}" if metrics.get("step") is not None else ""
        lines += [f"From {metrics.get('source')}{at}.", "", "| metric | value |", "|---|---|",
                  *[f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                    for k, v in metrics["values"].items()]]
    else:
        lines.append("None recorded: evaluate it with `python scripts/evaluate.py --run DIR` on a run directory.")
    training = training or {}
    if any(training.get(k) is not None for k in ("command", "config", "steps", "wall_time_s")):
        lines += ["", "## Training", ""]
        if training.get("command"):
            lines += ["Train it again with one command:", "", "```bash", str(training["command"]), "```", ""]
        rows = [("config", f"`{training['config']}`" if training.get("config") else None),
                ("steps", training.get("steps")),
                ("wall time", _duration(training["wall_time_s"]) if training.get("wall_time_s") else None)]
        lines += ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows if v is not None]]
    load_line = (f'params = trm_jax.load("{training["name"]}")   # shipped with trm_jax: no download'
                 if training.get("name") else
                 'params = trm_jax.load("hf://USER/REPO")   # or the local directory; hf://USER/REPO@REVISION pins one')
    lines += ["", "## Use", "", "```python", "import trm_jax", "", load_line,
              "answer = trm_jax.infer(params, query)",
              "trm_jax.plot_trace(trm_jax.trace(params, query), \"trace.gif\")   # the recursion, step by step",
              "```", "",
              "`trm_jax.infer` encodes the query as the task does, runs the recursion with halting and decodes the "
              "answer; `trm_jax.predict(params.model, params.params, tokens)` works on token ids.",
              "With `HF_HUB_OFFLINE=1` only the local Hugging Face cache is read "
              "(`hf download USER/REPO` fills it).", "",
              "## Model config", "", "| key | value |", "|---|---|",
              *[f"| `model.{f.name}` | `{getattr(m, f.name)}` |" for f in dataclasses.fields(m)], ""]
    return "\n".join(lines)


def _duration(seconds) -> str:
    seconds = float(seconds)
    return f"{seconds / 60:.1f} minutes" if seconds >= 120 else f"{seconds:.0f} s"


def _tag(task: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", task.lower()).strip("-") or "task"


def _task_summary(config: TRMConfig) -> str:
    """The first paragraph of the task's module docstring (what the task is, in its own words)."""
    doc = (sys.modules[task_class(config.data.task).__module__].__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first or f"Task `{config.data.task}`."


# ------------------------------------------------------------------------------------------------- read

def shipped_models() -> list[str]:
    """The names of the models shipped with the package (trm_jax/pretrained/<name>/), sorted."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(n for n in os.listdir(SHIPPED_DIR)
                  if os.path.isfile(os.path.join(SHIPPED_DIR, n, PRETRAINED_CONFIG_FILE)))


def shipped_model(name: str) -> str:
    """The directory of the shipped model `name`; TRMError listing the shipped names for another name."""
    if name in shipped_models():
        return os.path.join(SHIPPED_DIR, name)
    names = ", ".join(repr(n) for n in shipped_models()) or "none (this install ships no models)"
    raise TRMError(f"no shipped model named {name!r}; the shipped models are: {names} "
                   "(trm_jax.pretrained_models() lists them with their held-out metrics)")


def resolve_model(path) -> str:
    """What `trm_jax.load` reads for `path`: an existing path (it wins over a shipped model's name),
    `hf://...`, or a shipped model's directory; TRMError listing the shipped names for a name that is neither
    an existing path nor a shipped model."""
    text = os.fspath(path)
    if text.startswith(HUB_PREFIX) or os.path.exists(text):
        return text
    if text in shipped_models():
        return shipped_model(text)
    if os.sep not in text and "/" not in text:  # a bare name: the user meant a shipped model
        raise TRMError(f"{text!r} is neither a directory here nor the name of a shipped model; shipped models: "
                       f"{', '.join(repr(n) for n in shipped_models()) or 'none'}; or pass a run directory "
                       "(scripts/train.py), a pretrained directory or hf://USER/REPO")
    return text


def pretrained_models() -> dict:
    """The models shipped with trm_jax and their held-out metrics.

    Load one with `trm_jax.load(name)`; its card (README.md in its directory) says how the numbers were
    measured and how to train it again.

    Returns:
        {name: its card's held-out metrics}, e.g. {"sudoku": {"exact_accuracy": ..., "num_samples": ...,
        ...}}; an empty dict of metrics for a model whose card has none.
    """
    out = {}
    for name in shipped_models():
        meta = _read_meta(os.path.join(SHIPPED_DIR, name))
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        out[name] = dict(metrics.get("values") or {})
    return out


def held_out_samples(config: TRMConfig, num_samples: int, seed: int, *,
                     cache_dir: Optional[str] = None) -> tuple[list, list]:
    """(queries, answers): `num_samples` samples of the task's eval split generated anew, as `infer` takes
    and answers them, for checking a model against its card.

    The split is generated with config seed `seed`, so the samples are new (training used the model's own
    seed). A model that retrieves keeps its own seed: its knowledge base is the store it ships with, and its
    eval split asks about facts held out of training.
    """
    if num_samples < 1:
        raise TRMError(f"held-out samples: num_samples must be >= 1, got {num_samples}")
    data = config.data.replace(num_eval=int(num_samples), train_path=None, eval_path=None,
                               cache_dir=cache_dir or config.data.cache_dir)
    fresh = config.replace(seed=config.seed if config.rag.enabled else int(seed), data=data)
    samples = get_task(fresh).samples("eval")
    queries = [s["query"] if "query" in s else s["input"] for s in samples]
    answers = [s["answer"] if "answer" in s else s["output"] for s in samples]
    return queries, answers


def held_out_metrics(params, num_samples: int, seed: int, *, cache_dir: Optional[str] = None) -> dict:
    """{"exact_accuracy", "mean_recursion_depth", "num_samples"} of `params` (a TRMParams) on `num_samples`
    new held-out samples (`held_out_samples`), answered as `trm_jax.infer` answers them (with the model's
    own halting and depth): the numbers a shipped model's card states."""
    queries, answers = held_out_samples(params.config, num_samples, seed, cache_dir=cache_dir)
    details = get_task(params.config).infer(params, queries, return_details=True)  # what trm_jax.infer runs
    return {"exact_accuracy": float(np.mean([d["answer"] == a for d, a in zip(details, answers)])),
            "mean_recursion_depth": float(np.mean([d["recursion_depth"] for d in details])),
            "num_samples": len(answers)}


def is_pretrained(path) -> bool:
    """True for `hf://...` and for a directory holding a pretrained model's files rather than a run's."""
    text = os.fspath(path)
    if text.startswith(HUB_PREFIX):
        return True
    return (os.path.isdir(text) and not os.path.isfile(os.path.join(text, RUN_CONFIG_FILE))
            and any(os.path.isfile(os.path.join(text, f)) for f in (WEIGHTS_FILE, PRETRAINED_CONFIG_FILE)))


def resolve_pretrained(path) -> str:
    """A local directory for `path`: itself, or for `hf://user/repo[@revision]` the snapshot in the Hugging
    Face cache (downloaded unless HF_HUB_OFFLINE=1, which reads only the cache)."""
    text = os.fspath(path)
    if not text.startswith(HUB_PREFIX):
        return os.path.abspath(text)
    spec = text[len(HUB_PREFIX):]
    repo, _, revision = spec.partition("@")
    if not _HUB_REPO.fullmatch(repo) or (revision == "" and "@" in spec):
        raise TRMError(f"{text}: expected hf://USER/REPO or hf://USER/REPO@REVISION")
    # optional at import: only hub loading needs it
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        return snapshot_download(repo, revision=revision or None, library_name="trm_jax")
    except LocalEntryNotFoundError:
        raise TRMError(f"{text}: not in the local Hugging Face cache and the Hub cannot be reached (HF_HUB_OFFLINE=1 "
                       f"or no network); download it first with `hf download {repo}"
                       + (f" --revision {revision}" if revision else "") + "` while online, or unset HF_HUB_OFFLINE"
                       ) from None
    except RevisionNotFoundError:
        raise TRMError(f"{text}: the repository {repo} has no revision {revision!r}; pass a branch, tag or commit "
                       "it has") from None
    except RepositoryNotFoundError:
        raise TRMError(f"{text}: no model repository {repo} on the Hub (or it is private: log in with "
                       "`hf auth login`)") from None
    except HfHubHTTPError as e:
        raise TRMError(f"{text}: the Hub refused the download ({e}); check the name and your access") from None


def read_pretrained(path) -> Pretrained:
    """Read a pretrained directory (or `hf://user/repo[@revision]`): config, float32 weights (not checked
    against the model here: trm_jax.load does that), tokenizer and retrieval store."""
    directory = resolve_pretrained(path)
    meta = _read_meta(directory)
    weights_meta = meta.get("weights") if isinstance(meta.get("weights"), dict) else {}
    weights = os.path.join(directory, WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise TRMError(f"{directory} has {PRETRAINED_CONFIG_FILE} but no {WEIGHTS_FILE}; copy the whole directory "
                       "that save_pretrained wrote")
    expected = weights_meta.get("sha256")
    if expected and _sha256(weights) != expected:
        raise TRMError(f"{weights} does not match the checksum {PRETRAINED_CONFIG_FILE} records: it was damaged (an "
                       "interrupted download or copy) or replaced; download or copy it again, or save the model again")
    params = _unflatten(_load_tensors(weights), weights)
    config = _read_config(meta, directory)
    tok_dir = os.path.join(directory, TOKENIZER_DIR)
    tokenizer = load_tokenizer(tok_dir)[0] if is_saved_tokenizer(tok_dir) else None
    retriever = load_run_retriever(directory, config)
    step = meta.get("step")
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else None
    return Pretrained(directory, config, params, tokenizer, retriever, step if isinstance(step, int) else None, metrics)


def _read_meta(directory: str) -> dict:
    path = os.path.join(directory, PRETRAINED_CONFIG_FILE)
    if not os.path.isfile(path):
        raise TRMError(f"{directory} has no {PRETRAINED_CONFIG_FILE}; a pretrained directory holds the "
                       f"{PRETRAINED_CONFIG_FILE} and {WEIGHTS_FILE} that trm_jax.save_pretrained wrote (a run "
                       f"directory holds {RUN_CONFIG_FILE})")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TRMError(f"{path} is not valid JSON ({e}); copy it again or save the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TRMError(f"{path} is not a trm_jax pretrained config (its \"format\" is not {FORMAT!r}; is this a "
                       "model of another library?); trm_jax.load reads directories that trm_jax.save_pretrained wrote")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise TRMError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise TRMError(f"{path} has format_version {version}, newer than this trm_jax reads ({FORMAT_VERSION}); "
                       "upgrade trm_jax")
    if not isinstance(meta.get("config"), dict):
        raise TRMError(f"{path} holds no \"config\" section (the run's TRMConfig); save the model again")
    return meta


def _read_config(meta: dict, directory: str) -> TRMConfig:
    """The saved config, without the files of the machine it was trained on that are not on this one (the
    task's `machine_local_keys`: training data, the corpus; inference reads the directory's tokenizer and
    RAG store instead), checked by its task."""
    raw = json.loads(json.dumps(meta["config"]))  # a copy to edit
    raw["run_dir"] = directory
    try:
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        for key in task_class(data.get("task", DEFAULT_TASK)).machine_local_keys:
            section, _, name = key.partition(".")
            value = (raw.get(section) or {}).get(name)
            if isinstance(value, str) and value and not os.path.exists(value):
                logger.info("%s: %s = %s is not on this machine; inference does not read it", directory, key, value)
                raw[section][name] = None
        return get_task(TRMConfig.from_dict(raw)).config
    except ConfigError as e:
        path = os.path.join(directory, PRETRAINED_CONFIG_FILE)
        raise TRMError(f"{path}: the saved config does not load here: {e}") from None


def _load_tensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError  # optional at import: only saving and loading weights need it
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as e:
        raise TRMError(f"{path} is not a readable safetensors file ({e}); it is damaged or truncated: download or "
                       "copy it again") from None
    out = {}
    for name, arr in tensors.items():
        if arr.dtype not in DTYPES.values():
            raise TRMError(f"{path}: tensor {name!r} is {arr.dtype}; a pretrained directory holds float32 or "
                           "bfloat16 weights (save it with trm_jax.save_pretrained)")
        out[name] = arr.astype(np.float32)
    return out


def _unflatten(tensors: dict[str, np.ndarray], path: str) -> dict:
    """The nested parameter tree of "."-joined tensor names."""
    tree: dict = {}
    for name in sorted(tensors):
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TRMError(f"{path}: tensor {name!r} lies under another tensor's name; the file was not "
                               "written by save_pretrained")
        if leaf in node:
            raise TRMError(f"{path}: tensor name {name!r} is also a prefix of other tensors; the file was not "
                           "written by save_pretrained")
        node[leaf] = tensors[name]
    return tree
