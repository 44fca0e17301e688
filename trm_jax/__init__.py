"""trm_jax: Tiny Recursive Models in JAX/Flax."""

from trm_jax.config import TRMConfig, load_config
from trm_jax.errors import ConfigError, TRMError

__version__ = "0.1.0"
