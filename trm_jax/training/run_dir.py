"""The run directory: created with its log file, run files written (config, tokenizer, RAG), resume checked.

Layout: run_dir/{config.yaml, tokenizer/, checkpoints/, best/, metrics.jsonl, train.log, rag/}.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, Optional

import yaml

from trm_jax.config import TRMConfig, load_config
from trm_jax.data.tokenizers import is_saved_tokenizer, save_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.training.run_logging import RunLog

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"  # the best evaluated checkpoint (training.keep_best), an Orbax directory of its own
METRICS_FILE = "metrics.jsonl"
RAG_DIR = "rag"

# config sections/keys that shape the trajectory: a resumed run must not change them
RESUME_FIXED = ("seed", "model", "data", "curriculum", "training.batch_size", "training.optimizer",
                "training.halt_exploration_prob", "training.ema_decay", "training.ema_warmup")


def unwritable_message(run_dir: str, e: OSError, last_step: Optional[int] = None) -> str:
    where = getattr(e, "filename", None) or run_dir
    tail = f"; then rerun with --resume (last complete checkpoint: step {last_step})" if last_step is not None else ""
    return (f"cannot write to the run directory {run_dir} ({where}: {e.strerror or e}); free disk space or make it "
            f"writable, or set run_dir (--run-dir) to a writable directory{tail}")


class RunDirectory:
    """`path=None`: a temporary directory that `close()` deletes (a PyPI-style `Trainer(model, data)`
    without run_dir). Creating it attaches train.log (see run_logging.RunLog) until `close()`."""

    def __init__(self, path: Optional[str], *, process_index: int, progress_bar: bool):
        self._temp = tempfile.TemporaryDirectory(prefix="trm_jax_run_") if path is None else None
        self.path = os.path.abspath(self._temp.name if path is None else path)
        self.is_main = process_index == 0
        try:
            os.makedirs(self.path, exist_ok=True)
            self._run_log = RunLog(self.path, process_index, progress_bar)
        except OSError as e:
            raise TRMError(unwritable_message(self.path, e)) from None

    def join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def unwritable(self, e: OSError, last_step: Optional[int] = None) -> TRMError:
        return TRMError(unwritable_message(self.path, e, last_step))

    def write_run_files(self, config: TRMConfig, tokenizer: Any, retriever: Any, *, resume: bool) -> None:
        """config.yaml, the tokenizer (unless saved already) and the RAG store, on the main process; on
        resume, first check that the keys shaping the trajectory match the saved config."""
        if not self.is_main:
            return
        path = self.join(CONFIG_FILE)
        if resume and os.path.exists(path):
            self.check_resume_config(config)
        try:
            config.save(path)
            tok_dir = self.join(TOKENIZER_DIR)
            if hasattr(tokenizer, "save") and not is_saved_tokenizer(tok_dir):
                save_tokenizer(tokenizer, tok_dir)
            if retriever is not None:
                retriever.save(self.join(RAG_DIR))
        except OSError as e:
            raise self.unwritable(e) from None

    def check_resume_config(self, config: TRMConfig) -> None:
        path = self.join(CONFIG_FILE)
        # the saved config as its task reads it (a run saved before tasks had their own keys holds every task's)
        old, new = get_task(load_config(path)).config.to_dict(), config.to_dict()
        with open(path) as f:
            saved_training = (yaml.safe_load(f) or {}).get("training") or {}
        if "ema_warmup" not in saved_training:  # written before the warm-up existed: a constant EMA decay
            old["training"]["ema_warmup"] = False
        if new["training"]["ema_warmup"] and not old["training"]["ema_warmup"]:
            raise TRMError(f"--resume: the run in {self.path} was trained with a constant EMA decay (its config.yaml "
                           "sets training.ema_warmup false or predates it); resume with --set training.ema_warmup=false")

        def get(d, key):
            for part in key.split("."):
                d = d[part]
            return d

        for key in RESUME_FIXED:
            if get(old, key) != get(new, key):
                raise TRMError(f"--resume: config key '{key}' differs from the run's saved config ({path}); resume "
                               "with the saved config (--config <run_dir>/config.yaml) or start a new run_dir")
        changed = [f"{s}.{k}" for s in ("training", "monitoring") for k in old[s] if old[s][k] != new[s][k]]
        if changed:
            log.warning("--resume with changed settings: %s", ", ".join(changed))

    def close(self) -> None:
        """Detach train.log; a temporary directory is deleted (idempotent)."""
        self._run_log.close()
        if self._temp is not None:
            self._temp.cleanup()
