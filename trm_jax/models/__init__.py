"""Networks and the TinyRecursiveModel. Imports nothing of the package but `config`."""

from trm_jax.models.mixer import MLPMixer1D
from trm_jax.models.torch_import import config_from_torch_state_dict, from_torch_state_dict
from trm_jax.models.transformer import TransformerNetwork
from trm_jax.models.trm import (
    IGNORE_LABEL,
    Carry,
    Prediction,
    StepOutput,
    TinyRecursiveModel,
    compute_loss,
    make_model,
    init_params,
    initial_carry,
    latent_recursion,
    log_stablemax,
    predict,
    supervision_step,
    token_cross_entropy,
)
