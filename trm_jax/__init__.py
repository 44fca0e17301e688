"""trm_jax: Tiny Recursive Models in JAX/Flax.

    cfg = trm_jax.load_config("config.yaml")
    result = trm_jax.create_trainer(cfg).train()
    params = trm_jax.load(cfg.run_dir)
    trm_jax.infer(params, "mus(5)")  # the default code task: retrieval supplies "def mus(x): return x+2"
    trm_jax.plot_trace(trm_jax.trace(trm_jax.load("sudoku"), puzzle), "trace.gif")  # a shipped model, step by step
"""

import importlib

from trm_jax.config import CurriculumStage, ModelConfig, TRMConfig, load_config
from trm_jax.errors import ConfigError, TRMError

__version__ = "0.1.0"

# Resolved on first use, so `import trm_jax` (and a script's `from trm_jax.errors import ...`, before the
# launcher's re-execution) imports neither JAX nor Orbax, sentence-transformers or matplotlib.
_LAZY = {
    "MLPMixer1D": "trm_jax.models", "TinyRecursiveModel": "trm_jax.models",
    "TransformerNetwork": "trm_jax.models", "compute_loss": "trm_jax.models",
    "config_from_torch_state_dict": "trm_jax.models", "from_official_checkpoint": "trm_jax.models",
    "from_torch_state_dict": "trm_jax.models", "init_params": "trm_jax.models", "initial_carry": "trm_jax.models",
    "make_model": "trm_jax.models", "predict": "trm_jax.models", "supervision_step": "trm_jax.models",
    "load": "trm_jax.inference", "infer": "trm_jax.inference", "TRMParams": "trm_jax.inference",
    "save_pretrained": "trm_jax.pretrained", "pretrained_models": "trm_jax.pretrained",
    "trace": "trm_jax.tracing", "Trace": "trm_jax.tracing", "plot_trace": "trm_jax.plotting",
    "Trainer": "trm_jax.training", "TrainResult": "trm_jax.training", "create_model": "trm_jax.training",
    "create_trainer": "trm_jax.training", "create_tokenizer": "trm_jax.training", "Callback": "trm_jax.training",
    "CurriculumScheduler": "trm_jax.training",
    "TRMTrainingLogger": "trm_jax.training", "ResourceMonitor": "trm_jax.training",
    "evaluate": "trm_jax.evaluation", "plot_metrics": "trm_jax.plotting",
    "build_rag": "trm_jax.rag", "RAGRetriever": "trm_jax.rag", "RAGDatasetWrapper": "trm_jax.rag",
    "TextEmbedder": "trm_jax.rag", "MemoryVectorStore": "trm_jax.rag",
    "load_tokenizer": "trm_jax.data", "tokenize_and_pad": "trm_jax.data", "pad_sequence": "trm_jax.data",
    "prepare_code_input": "trm_jax.data",
    "adapt_puzzle_embeddings": "trm_jax.training.adapt", "adapt": "trm_jax.adaptation",
    "save_adapted_run": "trm_jax.adaptation",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trm_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(["ConfigError", "CurriculumStage", "ModelConfig", "TRMConfig", "TRMError", "load_config", *_LAZY])
