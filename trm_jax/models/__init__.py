"""Networks, the TinyRecursiveModel and its recursion, losses, predict, config -> model, checkpoint import/export.

Imports nothing of the package but `config` and `errors`. One job per module:
    layers, mixer, transformer   networks and their building blocks
    module                       the Linen module and the two variants' edges
    recursion                    the supervision step and final-step supervision's forward (pure functions of params)
    losses                       token cross-entropy, halting BCE, the accuracy definition
    predict                      inference with per-sample halting (head or settled), optionally K noisy trajectories
    trace                        predict step by step: every supervision step's answer, why each sample stopped
    trajectories                 the trajectories' noise keys, noise on the carry and choice (head, vote,
                                 settled, verifier)
    factory                      make_model: ModelConfig -> model (and back)
    torch_checkpoint             PyTorch state dicts; tiny-recursive-model weights in and out
    official_checkpoint          official TRM checkpoints in and out
"""

from trm_jax.models.factory import make_model, make_network, model_config
from trm_jax.models.losses import (IGNORE_LABEL, compute_loss, log_stablemax, model_loss, token_cross_entropy,
                                   token_matches)
from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.module import PUZZLE_EMB, TinyRecursiveModel
from trm_jax.models.official_checkpoint import (from_official_checkpoint, official_arch_to_model_config,
                                                read_official_arch, to_official_state_dict)
from trm_jax.models.predict import HALTING, NO_EARLY_HALT, Prediction, predict, predict_trajectories
from trm_jax.models.recursion import (Carry, StepOutput, final_step, init_params, initial_carry, latent_recursion,
                                      supervision_step)
from trm_jax.models.torch_checkpoint import config_from_torch_state_dict, from_torch_state_dict, to_torch_state_dict
from trm_jax.models.trace import StepRecord, predict_steps
from trm_jax.models.trajectories import DEFAULT_NOISE_STD, Trajectories
from trm_jax.models.transformer import TransformerNetwork

__all__ = [
    "DEFAULT_NOISE_STD", "HALTING", "IGNORE_LABEL", "NO_EARLY_HALT", "PUZZLE_EMB", "Carry", "MLPMixer1D",
    "Prediction", "StepOutput", "StepRecord", "TinyRecursiveModel", "Trajectories", "TransformerNetwork",
    "compute_loss", "config_from_torch_state_dict", "final_step", "from_official_checkpoint", "from_torch_state_dict",
    "init_params", "initial_carry", "latent_recursion", "log_stablemax", "make_model", "make_network", "model_config",
    "model_loss", "official_arch_to_model_config", "predict", "predict_steps", "predict_trajectories",
    "read_official_arch", "supervision_step", "to_official_state_dict", "to_torch_state_dict", "token_cross_entropy",
    "token_matches",
]
