"""Shared bits of the training tests: a tiny config and a synthetic task (also used by subprocesses)."""

from __future__ import annotations

import types

import numpy as np

from trm_jax.config import TRMConfig
from trm_jax.data.datasets import ArrayDataset

VOCAB = 12


class TinyTokenizer:
    """Stand-in tokenizer for synthetic tasks (vocab size only; nothing to save)."""

    vocab_size = VOCAB
    pad_token_id = 0


def reverse_task(seq_len: int, difficulty: float, n_train: int = 256, n_eval: int = 32, seed: int = 0):
    """Reverse a random digit string; difficulty widens the digit range."""
    rng = np.random.default_rng([seed, seq_len, int(difficulty * 100)])
    hi = 4 + int(round(difficulty * (VOCAB - 5)))

    def make(n):
        x = rng.integers(1, hi + 1, (n, seq_len)).astype(np.int32)
        return ArrayDataset(x, x[:, ::-1].copy(), np.full(n, difficulty, np.float32))

    return make(n_train), make(n_eval)


def tiny_config(run_dir, **sections) -> TRMConfig:
    raw = {
        "seed": 0,
        "run_dir": str(run_dir),
        "model": dict(network="mixer", dim=16, depth=1, num_latent_refinements=1, num_refinement_blocks=2,
                      max_recursion_depth=3, num_tokens=VOCAB),
        "data": dict(seq_len=8, difficulty=0.5),
        "training": dict(batch_size=8, steps=8, learning_rate=3e-3, warmup_steps=2, log_every=1, eval_every=1000,
                         checkpoint_every=1000, eval_batch_size=16, ema_decay=0.9, progress_bar=False,
                         halt_exploration_prob=0.5),
        "monitoring": dict(interval_steps=4),
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return TRMConfig.from_dict(raw)


def tiny_trainer(config, **kw):
    from trm_jax.training import create_trainer
    return create_trainer(config, tokenizer=TinyTokenizer(), datasets_fn=reverse_task, async_checkpoints=False, **kw)


def train_losses(run_dir) -> list[float]:
    from trm_jax.training import read_metrics
    return [r["loss"] for r in read_metrics(f"{run_dir}/metrics.jsonl")]


def sigterm_at_step(trainer, step: int) -> None:
    """Make `trainer` send itself SIGTERM while it logs `step` (a signal mid-run: checkpoint, clean stop)."""
    import os
    import signal

    flush = trainer._flush

    def flush_and_signal(window, at, *a):
        out = flush(window, at, *a)
        if at == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer._flush = flush_and_signal


def as_json(x):
    """x with its arrays and numbers as JSON values (nested lists): what a fixture shared through conftest's
    `once` keeps of a run."""
    if isinstance(x, dict):
        return {k: as_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [as_json(v) for v in x]
    return x if x is None or isinstance(x, str) else np.asarray(x).tolist()


def result_as_json(result, *fields) -> dict:
    """The named fields of a TrainResult (e.g. "step", "params") as JSON values."""
    return as_json({f: getattr(result, f) for f in fields})


def result_from_json(record: dict):
    """`result_as_json`'s record as an object again, its params trees as numpy arrays."""
    def arrays(tree):
        return {k: arrays(v) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree)

    return types.SimpleNamespace(**{k: arrays(v) if k in ("params", "raw_params") else v for k, v in record.items()})
