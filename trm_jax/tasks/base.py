"""`Task`: what generic code asks of a task (its config keys, tokenizer, datasets, retrieval, how `infer`
encodes a query and decodes an answer, how it is evaluated), with the defaults of text tasks; `GridTask`:
the defaults of grid puzzles (one token per cell, no retrieval).

Text samples are {"input", "output"} or {"context", "query", "answer"} dicts, tokenized by the run's
tokenizer (`trm_jax.data.make_text_dataset`); an answer is the predicted tokens up to the end token.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import typing
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from trm_jax.config import DataConfig, TaskOptions, build, coerce, declared_keys
from trm_jax.data.datasets import SPLITS, ArrayDataset, make_text_dataset
from trm_jax.data.files import split_indices
from trm_jax.data.jsonl import read_jsonl
from trm_jax.data.text import SampleEncoder, decode_prediction
from trm_jax.data.tokenizers import is_saved_tokenizer, load_tokenizer, save_tokenizer
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models import predict
from trm_jax.models.predict import power_of_two_at_least
from trm_jax.models.trajectories import check_options, indexed_keys
from trm_jax.rag import RAGDatasetWrapper, RAGRetriever, build_rag
from trm_jax.tasks.registry import BUILTIN_TASKS, resolve

logger = logging.getLogger(__name__)

MAX_BUCKET = 64  # largest batch `infer` compiles; longer lists run in chunks of this size
TEXT_FIELDS = ("input", "output", "context", "query", "answer")  # the text of a sample (BPE corpus)


class TraceInput(NamedTuple):
    """The one row `trm_jax.trace` follows for a query (`Task.trace_input`)."""

    tokens: np.ndarray  # int32 [1, seq_len] the model's input, encoded as infer encodes the query
    puzzle_ids: Optional[np.ndarray]  # int32 [1] its puzzle identifier; None: the task has none
    decode: Callable  # predicted tokens [seq_len] -> the answer, as infer decodes it
    solution: Any = None  # the answer, where the query carries it (an ARC task's test output)
    predict_options: Optional[dict] = None  # predict's defaults where the task's differ from the model's


def require(cond: bool, key: str, msg: str) -> None:
    """ConfigError naming `key` unless `cond` (for Task.validate)."""
    if not cond:
        raise ConfigError(f"config key '{key}': {msg}")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The keys of a task that has none of its own."""


class Task:
    """A task family: everything that differs between tasks, with the defaults of text tasks.

    A subclass sets `Options`, `uses_retrieval` and, for keys that name files, `machine_local_keys`, and
    overrides what differs from a text task. `get_task(config)` makes one instance per config.

    Building one parses the config's `data.options` into `self.options` (an `Options` instance) and
    checks them (`validate`); `self.config` is the config with just the task's own keys, parsed (another
    task's keys, which run configs saved before tasks had their own keys hold, are dropped).

    Attributes:
        Options: A frozen dataclass of the task's own `data.*` keys, written flat in YAML, each with a
            default and a trailing `# meaning` comment (the config reference shows them).
        uses_retrieval: Retrieved context goes into its samples (`rag.enabled` is allowed).
        machine_local_keys: Keys naming files of the machine a model was trained on, which inference never
            reads; a pretrained directory drops those missing where it loads.

    Args:
        config: The run's `TRMConfig`.

    Raises:
        ConfigError: A key of the task is bad (the message names it), or `rag.enabled` for a task
            without retrieval.
    """

    Options: type = NoOptions
    uses_retrieval: bool = False  # retrieved context goes into its samples (rag.enabled is allowed)
    # how trm_jax.plot_trace draws an answer: "text" (a table of steps), "sudoku_grid" (81 digits), "maze_grid"
    # (a square of "# SGo") or "colour_grid" (ARC's colours 0-9, a grid of its own size)
    answer_kind: str = "text"
    # keys naming files of the machine a model was trained on, which inference never reads (the tokenizer
    # and the RAG store travel with the model): a pretrained directory drops those missing where it loads
    machine_local_keys: tuple[str, ...] = ("data.train_path", "data.eval_path", "rag.corpus_path")

    def __init__(self, config):
        self.options = parse_options(type(self), config.data)
        data = dataclasses.replace(config.data, options=TaskOptions(self.options))
        self.config = config.replace(data=data)
        self.data = data
        require(not config.rag.enabled or self.uses_retrieval, "rag.enabled",
                f"data.task {self.name!r} does not use retrieved context: set rag.enabled: false")
        self.validate()

    def validate(self) -> None:
        """Check the task's own keys (`self.options`) and the shared `data.*` keys it depends on
        (`self.data`); raise ConfigError naming the key (use `require`)."""

    @property
    def name(self) -> str:
        return self.data.task

    # ------------------------------------------------------------------------------------ tokenizer

    def tokenizer(self, save_dir: Optional[str] = None):
        """The task's tokenizer, with its vocabulary size and pad id.

        Args:
            save_dir: A tokenizer saved there wins (a resumed run keeps its exact tokenizer); a new one is
                saved there. None = not saved.

        Returns:
            `(tokenizer, vocab_size, pad_token_id)`.
        """
        if is_saved_tokenizer(save_dir):
            return load_tokenizer(save_dir)
        tok = self.build_tokenizer()
        if save_dir:
            save_tokenizer(tok, save_dir)
        return tok, tok.vocab_size, tok.pad_token_id

    def build_tokenizer(self):
        """A new tokenizer: `data.tokenizer` ("bpe" is trained on `tokenizer_corpus()`)."""
        return self.named_tokenizer(self.data.tokenizer)

    def named_tokenizer(self, name: str):
        corpus = self.tokenizer_corpus() if name == "bpe" else None
        return load_tokenizer(name, corpus=corpus, vocab_size=self.data.bpe_vocab_size)[0]

    def tokenizer_corpus(self) -> list[str]:
        """Texts a BPE tokenizer is trained on: the training samples' text fields."""
        return sample_texts(self.samples("train"))

    # ----------------------------------------------------------------------------------------- data

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        """The raw text samples of a split (text tasks; grid tasks have token arrays only).

        Args:
            split: "train" or "eval".
            difficulty: Of generated samples; None = `data.difficulty`.

        Returns:
            Sample dicts ({"context", "query", "answer"} or {"input", "output"}).

        Raises:
            TRMError: The task has no text samples.
        """
        raise TRMError(f"data.task {self.name!r} has no text samples: its data are token arrays (use its datasets)")

    def datasets(self, tokenizer, *, seq_len: Optional[int] = None, difficulty: Optional[float] = None,
                 samples_transform=None) -> tuple[ArrayDataset, ArrayDataset]:
        """The training and held-out sets at a curriculum stage's length and difficulty.

        Args:
            tokenizer: The run's tokenizer.
            seq_len: Tokens per sample; None = `data.seq_len`.
            difficulty: Of generated data; None = `data.difficulty`.
            samples_transform: `list[dict] -> list[dict]`, edits text samples before tokenization (e.g.
                the RAG wrapper); grid tasks ignore it.

        Returns:
            `(train, eval)` ArrayDatasets.
        """
        seq_len, difficulty = self.stage(seq_len, difficulty)
        out = []
        for split in SPLITS:
            samples = self.samples(split, difficulty)
            if samples_transform is not None:
                samples = samples_transform(samples)
            out.append(make_text_dataset(samples, tokenizer, seq_len, self.data.truncation))
        return out[0], out[1]

    def dataset_from_file(self, path: str, tokenizer, seq_len: int, samples_transform=None) -> ArrayDataset:
        """The samples of a file in the task's format (text tasks: JSONL), as training builds its inputs.

        Args:
            path: The file.
            tokenizer: The run's tokenizer.
            seq_len: Tokens per sample.
            samples_transform: As in `datasets`.

        Returns:
            An ArrayDataset.
        """
        samples = read_jsonl(path)
        if samples_transform is not None:
            samples = samples_transform(samples)
        return make_text_dataset(samples, tokenizer, seq_len, self.data.truncation)

    def retriever(self) -> Optional[RAGRetriever]:
        """The retriever of the run (`trm_jax.rag.build_rag`; None unless rag.enabled): rag.corpus_path
        indexed, or the task's own corpus (`retrieval_corpus`)."""
        return build_rag(self.config, task_corpus=self.retrieval_corpus)

    def retrieval_transform(self, retriever) -> Optional[RAGDatasetWrapper]:
        """The samples_transform that adds `retriever`'s context (None without retriever or retrieval)."""
        if retriever is None or not self.uses_retrieval:
            return None
        return RAGDatasetWrapper.from_config(retriever, self.config)

    def retrieval_corpus(self) -> tuple[list[str], list[dict]]:
        """(texts, metadata) the retriever indexes when rag.corpus_path is null."""
        raise TRMError(f"rag.enabled with data.task={self.name!r} has no built-in corpus; set rag.corpus_path to a "
                       "folder of .txt/.md files or a JSONL file with a \"text\" field")

    # helpers for generated data and user files

    def stage(self, seq_len: Optional[int], difficulty: Optional[float]) -> tuple[int, float]:
        """(seq_len, difficulty) of a stage, data.* where not given."""
        return (self.data.seq_len if seq_len is None else int(seq_len),
                self.data.difficulty if difficulty is None else float(difficulty))

    def split_size(self, split: str) -> int:
        """How many samples a generated `split` has (data.num_train / data.num_eval)."""
        check_split(split)
        return self.data.num_train if split == "train" else self.data.num_eval

    def generated_seed(self, split: str) -> int:
        """Seed of a generated split: distinct per split, so train and eval samples never coincide."""
        check_split(split)
        return 2 * int(self.config.seed) + SPLITS.index(split)

    def split_file(self, split: str) -> str:
        """The user file `split` reads: data.eval_path for eval when set, else data.train_path."""
        check_split(split)
        return self.data.train_path if split == "train" or self.data.eval_path is None else self.data.eval_path

    def file_rows(self, split: str, n: int) -> np.ndarray:
        """Rows of `split_file(split)` (n rows) that `split` uses: see trm_jax.data.files.split_indices."""
        data = self.data
        return split_indices(n, split, seed=self.config.seed, num_eval=data.num_eval,
                             max_rows=data.max_train_rows if split == "train" else data.max_eval_rows,
                             has_eval_file=data.eval_path is not None)

    # ------------------------------------------------------------------------------------ inference

    def encode(self, queries: list, tokenizer, seq_len: int, retriever=None) -> tuple[np.ndarray, list]:
        """(input ids int32 [len(queries), seq_len], per query the retrieved (text, score) contexts)."""
        samples = [{"query": q} for q in queries]
        contexts: list = [[] for _ in queries]
        if retriever is not None:
            rag = self.config.rag
            contexts = retriever.retrieve_many(list(queries), rag.top_k)
            samples = [{"query": q, "context": rag.separator.join(text for text, _ in hits)}
                       for q, hits in zip(queries, contexts)]
        encoder = SampleEncoder(tokenizer, seq_len, self.data.truncation)
        ids = np.full((len(queries), seq_len), tokenizer.pad_token_id, np.int32)
        for i, s in enumerate(samples):
            row = encoder.input_ids(s, where=f"text {i}")
            ids[i, :len(row)] = row
        encoder.report(len(queries))
        return ids, contexts

    def decode(self, tokens: np.ndarray, tokenizer, query) -> str:
        """The answer in predicted `tokens` [seq_len] to `query`."""
        return decode_prediction(tokenizer, tokens)

    def infer(self, params, queries, *, halt_threshold: Optional[float] = None,
              max_recursion_depth: Optional[int] = None, return_details: bool = False, trajectories: int = 1,
              noise_std: Optional[float] = None, select: str = "halt", seed: int = 0):
        """Answer one query or a list of them: encode, predict, decode (what `trm_jax.infer` runs).

        The batch is padded to a power-of-two bucket, so repeated calls reuse a few compiled programs. The
        stop rule is the model's (`model.halting`, `model.settle_steps`: `trm_jax.infer` sets them).

        Args:
            params: A `TRMParams`.
            queries: One query string or a list of them.
            halt_threshold: As `trm_jax.infer`.
            max_recursion_depth: As `trm_jax.infer`.
            return_details: As `trm_jax.infer`.
            trajectories: As `predict`.
            noise_std: As `predict`.
            select: As `predict` ("verify" with the task's `verifier`).
            seed: Keys the noise: query i's by `fold_in(key(seed), i)`, as sample i of
                `trm_jax.evaluation.evaluate`.

        Returns:
            The answer, or a list of answers for a list of queries (dicts with `return_details`).

        Raises:
            TRMError: A query that is not a non-empty string, a bad option, or a model without a tokenizer.
        """
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TRMError(f"infer() takes strings; item {i} is a {type(t).__name__}")
            if not t.strip():
                raise TRMError(f"infer() got an empty text (item {i}); pass a non-empty query")
        if max_recursion_depth is not None and int(max_recursion_depth) < 1:
            raise TRMError(f"max_recursion_depth must be >= 1, got {max_recursion_depth}")
        noise_std = check_options(trajectories, noise_std, select)
        if params.tokenizer is None:
            raise TRMError("this model has no tokenizer (none was saved with it and its task builds one from data); "
                           "pass tokenizer= to trm_jax.infer, or save the model with its tokenizer")
        # its halt_threshold, max_recursion_depth, halting and settle_steps (from the config) are predict's defaults
        model = params.model
        verifier = self.select_verifier(params.tokenizer, select, details=return_details)
        results = []
        for start in range(0, len(texts), MAX_BUCKET):
            chunk = texts[start:start + MAX_BUCKET]
            ids, contexts = self.encode(chunk, params.tokenizer, params.seq_len, params.retriever)
            padded = np.full((_bucket(len(chunk)), params.seq_len), params.tokenizer.pad_token_id, np.int32)
            padded[:len(chunk)] = ids
            keys = None if noise_std is None else indexed_keys(seed, np.arange(start, start + len(padded)))
            pred = predict(model, params.params, padded, halt_threshold=halt_threshold,
                           max_recursion_depth=max_recursion_depth, trajectories=trajectories, noise_std=noise_std,
                           select=select, rng=keys, verifier=verifier)
            tokens, depths, halt_probs, settled, verified = jax.device_get(
                (pred.tokens, pred.recursion_depth, pred.halt_prob, pred.settled, pred.verified))
            for i, query in enumerate(chunk):
                answer = self.decode(tokens[i], params.tokenizer, query)
                if return_details:
                    details = dict(answer=answer, recursion_depth=int(depths[i]), halt_prob=float(halt_probs[i]),
                                   settled=bool(settled[i]))
                    if verified is not None:
                        details["verified"] = bool(verified[i])
                    results.append(dict(details, contexts=contexts[i]))
                else:
                    results.append(answer)
        return results[0] if single else results

    # ------------------------------------------------------------------------------------- verifier

    def verify(self, query, answer) -> bool:
        """Whether `answer` (an answer as `infer` returns it) is a valid answer to `query` by the task's own
        rules, checked without a reference answer (Sudoku: a complete grid obeying the rules that keeps the
        givens; maze: a path from S to G over open cells). Tasks without such a check (text, ARC) have no
        verifier: TRMError. A task with one overrides this and `verifier` (its token form) together.

        Raises:
            TRMError: The task has no verifier, or `query` is not a valid query of the task.
        """
        raise TRMError(self._no_verifier("verify()"))

    def verifier(self, tokenizer) -> Optional[Callable]:
        """`verify` on token rows, what `predict(select="verify")` runs on the host for every trajectory.

        Args:
            tokenizer: The run's tokenizer.

        Returns:
            `fn(input_row, answer_row) -> bool` for numpy int rows [seq_len] as the model reads and writes
            them, or None: the task has no verifier (the default). It must return False, not raise, for any
            row, since it also sees padding rows and untrained models' answers.
        """
        return None

    def select_verifier(self, tokenizer, select: str, *, details: bool = False) -> Optional[Callable]:
        """The verifier `predict` takes for `select` (and for reporting each answer's `verified` when `details`),
        or None where it needs none or the task has none.

        Raises:
            TRMError: `select="verify"` on a task without a verifier.
        """
        if select != "verify" and not details:
            return None
        fn = self.verifier(tokenizer)
        if fn is None and select == "verify":
            raise TRMError(self._no_verifier("select='verify'") + "; choose a trajectory by select='halt', 'vote' "
                           "or 'settled'")
        return fn

    def _no_verifier(self, what: str) -> str:
        return (f"{what}: the {self.name!r} task has no verifier (a check of an answer by the task's rules; "
                "Sudoku and maze have one)")
    def trace_input(self, params, query, *, test_index: int = 0) -> TraceInput:
        """The row `trm_jax.trace` follows for a query, and how its answers decode.

        Args:
            params: A `TRMParams`.
            query: One query string, encoded as `infer` encodes it.
            test_index: Which input of a query that holds several (an ARC task's tests); 0 otherwise.

        Returns:
            A `TraceInput`.

        Raises:
            TRMError: Not one non-empty query string, a `test_index` the query does not have, or a model
                without a tokenizer.
        """
        if not isinstance(query, str) or not query.strip():
            raise TRMError(f"trace() takes one non-empty query string for the {self.name!r} task, got "
                           f"{type(query).__name__} {str(query)[:40]!r}")
        if test_index != 0:
            raise TRMError(f"test_index={test_index}: a query of the {self.name!r} task holds one input (test_index=0)")
        if params.tokenizer is None:
            raise TRMError("this model has no tokenizer (none was saved with it and its task builds one from data); "
                           "pass tokenizer=, or save the model with its tokenizer")
        ids, _ = self.encode([query], params.tokenizer, params.seq_len, params.retriever)
        return TraceInput(np.asarray(ids, np.int32), None, lambda tokens: self.decode(tokens, params.tokenizer, query))

    # ----------------------------------------------------------------------------------- evaluation

    def eval_dataset(self, params, path: Optional[str] = None) -> ArrayDataset:
        """Held-out samples built exactly as training built its inputs (same tokenizer, seq_len and RAG context).

        Args:
            params: The run's `TRMParams`.
            path: A file in the task's format; None = the run's own eval split.

        Returns:
            An ArrayDataset.

        Raises:
            TRMError: `path` does not exist.
        """
        transform = self.retrieval_transform(params.retriever)
        if path is None:
            return self.datasets(params.tokenizer, seq_len=params.seq_len, samples_transform=transform)[1]
        if not os.path.isfile(path):
            raise TRMError(f"evaluation data not found: {path}")
        return self.dataset_from_file(path, params.tokenizer, params.seq_len, transform)

    def evaluate(self, params, *, data: Optional[str] = None, batch_size: int = 64,
                 halt_threshold: Optional[float] = None, max_recursion_depth: Optional[int] = None,
                 trajectories: int = 1, noise_std: Optional[float] = None, select: str = "halt",
                 seed: int = 0) -> Optional[dict]:
        """The task's own evaluation of a run, as `scripts/evaluate.py` reports it.

        Args:
            params: The run's `TRMParams`.
            data: The evaluation file; None = the run's eval split.
            batch_size: Samples per predict call.
            halt_threshold: As `predict`.
            max_recursion_depth: As `predict`.
            trajectories: As `predict`.
            noise_std: As `predict`.
            select: As `predict`.
            seed: Keys the noise.

        Returns:
            `{name: float}` (a "submission" entry is what `evaluate.py --submission` writes), or None: the
            default accuracy report (`trm_jax.evaluation.evaluate_run`).
        """
        return None


    # ------------------------------------------------------------------------------------ adaptation

    def adaptation_data(self, params, puzzles, **options):
        """The data of test-time adaptation to puzzles the run never trained on (`trm_jax.adapt`).

        Args:
            params: The run's `TRMParams`.
            puzzles: The puzzles in the task's form; None = the task's own choice.
            **options: The task's own options (ARC: `num_aug`, `seed`).

        Returns:
            `(rows, adaptation)`: an ArrayDataset whose puzzle_ids are new rows of the run's puzzle table,
            and the task's object that the adapted run answers with (`TRMParams.adaptation`; it has
            `save(run_dir)`).

        Raises:
            TRMError: The task has no test-time adaptation (tasks whose samples carry no puzzle
                identifiers have none).
        """
        raise TRMError(f"the {self.name!r} task has no test-time adaptation to new puzzles; a model with a puzzle "
                       "table adapts to arrays with trm_jax.adapt_puzzle_embeddings(model, params, (inputs, labels, "
                       "puzzle_ids), steps=N)")

    def load_adaptation(self, run_dir: str):
        """The adaptation object saved in `run_dir` by an adapted run, or None."""
        return None


class GridTask(Task):
    """A puzzle on a grid: one token per cell, the answer is the grid. Subclasses give `split_dataset`."""

    def datasets(self, tokenizer, *, seq_len: Optional[int] = None, difficulty: Optional[float] = None,
                 samples_transform=None) -> tuple[ArrayDataset, ArrayDataset]:
        seq_len, difficulty = self.stage(seq_len, difficulty)
        if samples_transform is not None:
            logger.warning("samples_transform (e.g. RAG) is ignored for the %s task: its input is the grid", self.name)
        train, evl = (self.split_dataset(split, tokenizer, seq_len, difficulty) for split in SPLITS)
        return train, evl

    def split_dataset(self, split: str, tokenizer, seq_len: int, difficulty: float) -> ArrayDataset:
        raise NotImplementedError


def parse_options(cls: type, data: DataConfig):
    """The `Options` of the task class `cls` from `data.options` (the keys as written): values coerced to
    their field types, a ConfigError naming the key for an unknown one (with a did-you-mean), a warning
    for keys of another built-in task that are not at their defaults (they have no effect)."""
    own_keys = _field_names(cls.Options)
    shared = sorted(set(own_keys) & set(declared_keys(DataConfig)))
    require(not shared, "data.task", f"task {data.task!r} redefines the shared data keys {shared} in its Options; "
            "give its own keys other names")
    own, foreign = {}, []
    for key, value in data.options.items():
        if key in own_keys:
            own[key] = value
            continue
        owner = _builtin_owner(key)
        if owner is None:
            raise ConfigError(f"unknown config key 'data.{key}' for data.task {data.task!r}.{_hint(key, own_keys)}")
        if not _at_default(owner, key, value):
            foreign.append(key)
    if foreign:
        logger.warning("config key(s) %s have no effect with data.task %r (another task's keys)",
                       ", ".join(f"'data.{k}'" for k in foreign), data.task)
    return build(cls.Options, own, "data")


def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _builtin_options() -> list[type]:
    return [resolve(name).Options for name in BUILTIN_TASKS]


def _builtin_owner(key: str) -> Optional[type]:
    """The Options class of the built-in task that has the data key `key` (None: no task has it)."""
    return next((o for o in _builtin_options() if key in _field_names(o)), None)


def _at_default(options_cls: type, key: str, value) -> bool:
    default = next(f.default for f in dataclasses.fields(options_cls) if f.name == key)
    try:
        return coerce(typing.get_type_hints(options_cls)[key], value, f"data.{key}") == default
    except ConfigError:
        return False


def _hint(key, own_keys) -> str:
    """A did-you-mean for an unknown data key: the task's own or shared keys first, then other tasks'."""
    own = [*declared_keys(DataConfig), *own_keys]
    close = difflib.get_close_matches(str(key), own, n=1)
    if close:
        return f" Did you mean 'data.{close[0]}'?"
    close = difflib.get_close_matches(str(key), [k for o in _builtin_options() for k in _field_names(o)], n=1)
    if close:
        return f" Did you mean 'data.{close[0]}' (a key of another task)?"
    return f" Valid keys: {', '.join(own)}."


def sample_texts(samples: list) -> list[str]:
    """The non-empty text fields of samples, in order."""
    texts = []
    for s in samples:
        texts.extend(v for k, v in s.items() if k in TEXT_FIELDS and v)
    return texts


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise TRMError(f"split must be one of {SPLITS}, got {split!r}")


def _bucket(n: int) -> int:
    return min(MAX_BUCKET, power_of_two_at_least(n))
