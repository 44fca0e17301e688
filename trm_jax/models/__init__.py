"""Networks and the TinyRecursiveModel. Imports nothing of the package but `config` (and `errors`)."""

from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.official_checkpoint import (
    from_official_checkpoint,
    official_arch_to_model_config,
    read_official_arch,
    to_official_state_dict,
    to_torch_state_dict,
)
from trm_jax.models.torch_import import config_from_torch_state_dict, from_torch_state_dict
from trm_jax.models.transformer import TransformerNetwork
from trm_jax.models.trm import (
    IGNORE_LABEL,
    NO_EARLY_HALT,
    PUZZLE_EMB,
    Carry,
    Prediction,
    StepOutput,
    TinyRecursiveModel,
    compute_loss,
    init_params,
    initial_carry,
    latent_recursion,
    log_stablemax,
    make_model,
    make_network,
    model_config,
    model_loss,
    predict,
    supervision_step,
    token_cross_entropy,
    token_matches,
)

__all__ = [
    "IGNORE_LABEL", "NO_EARLY_HALT", "PUZZLE_EMB", "Carry", "MLPMixer1D", "Prediction", "StepOutput",
    "TinyRecursiveModel", "TransformerNetwork", "compute_loss", "config_from_torch_state_dict",
    "from_official_checkpoint", "from_torch_state_dict", "init_params", "initial_carry", "latent_recursion",
    "log_stablemax", "make_model", "make_network", "model_config",
    "model_loss", "official_arch_to_model_config", "predict", "read_official_arch", "supervision_step",
    "to_official_state_dict", "to_torch_state_dict", "token_cross_entropy", "token_matches",
]
