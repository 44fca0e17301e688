"""TinyRecursiveModel: the Linen module, a network wrapped in the edges of one of two variants.

The module takes any Flax network `[batch, seq, dim] -> [batch, seq, dim]` (as the PyPI package
`tiny-recursive-model` does) and holds the parameters of the edges around it: input embedding,
initial carry, output and halting heads. The two variants differ only there, each in one edges
class chosen once from `variant`:

- "pypi" (lucidrains): learned initial y/z vectors, optional register tokens, halting head = mean
  over positions, no bias, zero init; softmax cross-entropy by default.
- "official" (SamsungSAILMontreal/TinyRecursiveModels): puzzle-embedding prefix + token embedding
  scaled by sqrt(dim) (optional learned positions), fixed initial `H_init`/`L_init`, `q_head`
  (2 outputs, bias -5 at init) on position 0, `lm_head` after the prefix.

The edges classes are plain Python: their `setup` declares parameters and submodules on the model
itself, so the parameter tree stays flat (checkpoint import/export and saved runs depend on the
names). The recursion that drives the module lives in `recursion.py` and `predict.py`.
"""

from __future__ import annotations

import inspect
import math
from typing import Optional, Protocol

import jax
import jax.numpy as jnp
from flax import linen as nn

from trm_jax.errors import ConfigError, TRMError
from trm_jax.models.layers import truncated_normal_init
from trm_jax.models.predict import DEFAULT_HALTING, DEFAULT_SETTLE_STEPS, HALTING, Prediction, predict
from trm_jax.models.recursion import Carry, init_params

PUZZLE_EMB = "puzzle_emb"  # top-level param name of the puzzle-embedding table (sparse updates)


class Edges(Protocol):
    """What a variant provides around the network. Methods take the (bound) model; `setup` runs inside
    its `setup`, so what it assigns to the model becomes the model's own parameters and submodules."""

    def prefix_len(self, model) -> int:
        """Positions in front of the tokens."""
        ...

    def has_puzzle_emb(self, model) -> bool:
        ...

    def setup(self, model) -> None:
        ...

    def embed(self, model, tokens, puzzle_ids, puzzle_delta):
        """x: [batch, prefix + seq_len, dim]."""
        ...

    def initial_states(self, model):
        """(y0, z0), each [dim]: the initial answer and latent state of every position."""
        ...

    def heads(self, model, y):
        """(logits [batch, seq_len, V], halt_logits [batch]) in the compute dtype."""
        ...


class PyPIEdges:
    def prefix_len(self, model) -> int:
        return model.num_register_tokens

    def has_puzzle_emb(self, model) -> bool:
        return False

    def setup(self, model) -> None:
        dim, normal = model.dim, nn.initializers.normal
        model.input_embed = nn.Embed(model.num_tokens, dim, embedding_init=normal(1.0))  # torch Embedding: N(0, 1)
        model.output_init_embed = model.param("output_init_embed", normal(1e-2), (dim,))
        model.latent_init_embed = model.param("latent_init_embed", normal(1e-2), (dim,))
        if model.num_register_tokens:
            model.register_tokens = model.param("register_tokens", normal(1e-2), (model.num_register_tokens, dim))
        model.to_pred = nn.Dense(model.num_tokens, use_bias=False)
        # zero init: the halt head starts at p=0.5 for every sample, as in the reference
        model.to_halt_pred = nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)

    def embed(self, model, tokens, puzzle_ids, puzzle_delta):
        x = model.input_embed(tokens)
        if model.num_register_tokens:
            regs = jnp.broadcast_to(model.register_tokens, (tokens.shape[0],) + model.register_tokens.shape)
            x = jnp.concatenate([regs, x], axis=1)
        return x

    def initial_states(self, model):
        return model.output_init_embed, model.latent_init_embed

    def heads(self, model, y):
        return model.to_pred(y[:, model.num_register_tokens:]), model.to_halt_pred(y.mean(axis=1))[..., 0]


class OfficialEdges:
    def prefix_len(self, model) -> int:
        if not model.puzzle_emb_ndim:
            return 0
        return model.puzzle_emb_len or -(-model.puzzle_emb_ndim // model.dim)

    def has_puzzle_emb(self, model) -> bool:
        return model.puzzle_emb_ndim > 0

    def setup(self, model) -> None:
        # official trm.py: embedding std 1/sqrt(hidden); CastedLinear = truncated LeCun normal
        dim, init = model.dim, truncated_normal_init(1.0 / math.sqrt(model.dim))
        model.embed_tokens = nn.Embed(model.num_tokens, dim, embedding_init=init)
        if model.has_puzzle_emb:  # zero init (official CastedSparseEmbedding init_std=0)
            model.puzzle_table = model.param(PUZZLE_EMB, nn.initializers.zeros,
                                             (model.num_puzzle_identifiers, model.puzzle_emb_ndim))
        if model.pos_encodings == "learned":
            model.embed_pos = nn.Embed(model.total_len, dim, embedding_init=init)
        # fixed initial states (official: trunc_normal std 1 buffers stored in the checkpoint)
        model.H_init = model.param("H_init", truncated_normal_init(1.0), (dim,))
        model.L_init = model.param("L_init", truncated_normal_init(1.0), (dim,))
        model.lm_head = nn.Dense(model.num_tokens, use_bias=False, kernel_init=init)
        model.q_head = nn.Dense(2, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.constant(-5.0))

    def embed(self, model, tokens, puzzle_ids, puzzle_delta):
        batch, dim, dt = tokens.shape[0], model.dim, jnp.dtype(model.dtype)
        x = model.embed_tokens(tokens).astype(dt)
        if model.has_puzzle_emb:
            ids = jnp.zeros((batch,), jnp.int32) if puzzle_ids is None else puzzle_ids
            rows = jnp.take(model.puzzle_table, ids, axis=0)  # [batch, ndim]
            if puzzle_delta is not None:
                rows = rows + puzzle_delta
            rows = rows.astype(dt)
            pad = model.prefix_len * dim - model.puzzle_emb_ndim  # official: zero-pad to len * hidden
            if pad:
                rows = jnp.pad(rows, ((0, 0), (0, pad)))
            x = jnp.concatenate([rows.reshape(batch, model.prefix_len, dim), x], axis=1)
        if model.pos_encodings == "learned":  # official: scale by 1/sqrt(2) to keep the variance
            x = 0.707106781 * (x + model.embed_pos.embedding.astype(dt))
        return math.sqrt(dim) * x

    def initial_states(self, model):  # fixed, not trained
        return jax.lax.stop_gradient(model.H_init), jax.lax.stop_gradient(model.L_init)

    def heads(self, model, y):
        # q_halt; the official q_continue output is unused
        return model.lm_head(y[:, model.prefix_len:]), model.q_head(y[:, 0])[..., 0]


EDGES: dict[str, Edges] = {"pypi": PyPIEdges(), "official": OfficialEdges()}


def _accepts(module: nn.Module, arg: str) -> bool:
    try:
        return arg in inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False


class TinyRecursiveModel(nn.Module):
    """A TRM around any network. Mirrors `tiny_recursive_model.TinyRecursiveModel(dim, num_tokens,
    network, num_refinement_blocks, num_latent_refinements, halt_loss_weight, num_register_tokens)`.

    The module holds no weights: `params = model.init_params(key)` makes them, and the pure functions
    (`supervision_step`, `predict`, ...) take `(model, params, inputs)`. The fields after the PyPI
    package's set the variant's edges, inference defaults and compute knobs; `make_model(ModelConfig)`
    sets them all from a config.

    Args:
        dim: Width of the embeddings and of the answer and latent states.
        num_tokens: Vocabulary size.
        network: Any Flax module [batch, seq, dim] -> [batch, seq, dim] (`MLPMixer1D`,
            `TransformerNetwork`, your own); it may take `deterministic` for dropout.
        num_refinement_blocks: `T`, cycles per supervision step (at least 2: T-1 without gradient, one
            with).
        num_latent_refinements: `n`, latent updates per cycle.
        halt_loss_weight: Weight of the halting BCE in the loss.
        num_register_tokens: Learned prefix (register) tokens prepended to the input.
        seq_len: Tokens per sample, without the prefix; None = the network's own `seq_len` minus the
            prefix (the mixer's `seq_len` includes register tokens, as in the PyPI package). A network
            whose parameters do not depend on the length needs neither.
        max_recursion_depth: `predict`'s default cap on supervision steps.
        halt_threshold: `predict`'s default: a sample halts when sigmoid(halt_logit) >= this.
        halting: `predict`'s default stop rule: "head" (the halting head, by `halt_threshold`) or
            "settled" (the decoded answer unchanged for `settle_steps` consecutive supervision steps).
            Training is the same either way (the halting head is trained by deep supervision).
        settle_steps: `predict`'s default for `halting="settled"`, >= 1.
        loss: "softmax" cross-entropy, or "stablemax" (the official recipe's).
        variant: The edges: "pypi" (learned initial states, halting head on the mean over positions) or
            "official" (puzzle-embedding prefix, sqrt(dim) input scale, fixed initial states, halting
            head on position 0).
        num_puzzle_identifiers: Official variant: rows of the puzzle-embedding table (0 = no table).
        puzzle_emb_ndim: Official variant: puzzle-embedding width (0 = no puzzle embedding).
        puzzle_emb_len: Official variant: prefix positions the puzzle embedding fills; 0 =
            ceil(puzzle_emb_ndim / dim).
        pos_encodings: Official variant: "learned" adds a position table to the input; "none" adds none.
        dtype: Compute dtype of the edges ("float32" or "bfloat16"); the network has its own.
        scan_unroll: Unroll factor of the n-step latent scan (speed against compile time).
        remat: What the gradient cycle keeps for the backward pass: "auto" (the measured best per
            network), "none" (every intermediate), "dots" (matmul outputs) or "full" (only each network
            application's input).

    Raises:
        ConfigError: `num_refinement_blocks` < 2, an unknown `variant` or `halting`, `settle_steps` < 1, or
            `puzzle_emb_ndim` without `num_puzzle_identifiers`.
    """

    dim: int
    num_tokens: int
    network: nn.Module
    num_refinement_blocks: int = 3  # T
    num_latent_refinements: int = 6  # n
    halt_loss_weight: float = 1.0
    num_register_tokens: int = 0
    seq_len: Optional[int] = None
    max_recursion_depth: int = 16
    halt_threshold: float = 0.5
    halting: str = DEFAULT_HALTING
    settle_steps: int = DEFAULT_SETTLE_STEPS
    loss: str = "softmax"
    variant: str = "pypi"
    num_puzzle_identifiers: int = 0
    puzzle_emb_ndim: int = 0
    puzzle_emb_len: int = 0  # 0 = ceil(puzzle_emb_ndim / dim), as the official code
    pos_encodings: str = "none"  # official variant: "learned" adds a position table to the input
    dtype: str = "float32"  # compute dtype of the edges; the network has its own
    scan_unroll: int = 1
    remat: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        if self.num_refinement_blocks < 2:
            raise ConfigError(f"num_refinement_blocks (T) must be >= 2, got {self.num_refinement_blocks}")
        if self.variant not in EDGES:
            raise ConfigError(f"variant must be one of {sorted(EDGES)}, got {self.variant!r}")
        if self.halting not in HALTING:
            raise ConfigError(f"halting must be one of {HALTING} (the halting head, or an answer that stopped "
                              f"changing), got {self.halting!r}")
        if isinstance(self.settle_steps, bool) or not isinstance(self.settle_steps, int) or self.settle_steps < 1:
            raise ConfigError(f"settle_steps must be an int >= 1, got {self.settle_steps!r}")
        if self.puzzle_emb_ndim and not self.num_puzzle_identifiers:
            raise ConfigError("puzzle_emb_ndim > 0 needs num_puzzle_identifiers > 0 (the table's rows)")

    # ---- static structure -------------------------------------------------------------------------

    @property
    def edges(self) -> Edges:
        return EDGES[self.variant]

    @property
    def prefix_len(self) -> int:
        """Positions in front of the tokens: register tokens (pypi) or the puzzle-embedding prefix."""
        return self.edges.prefix_len(self)

    @property
    def has_seq_len(self) -> bool:
        """Whether the model or its network sets the number of tokens per sample."""
        return self.seq_len is not None or getattr(self.network, "seq_len", None) is not None

    @property
    def token_len(self) -> int:
        """Tokens per sample (without the prefix)."""
        if self.seq_len is not None:
            return int(self.seq_len)
        if not self.has_seq_len:
            raise TRMError("this needs the model's seq_len (tokens per sample): pass "
                           "TinyRecursiveModel(..., seq_len=L) or a network with a seq_len attribute")
        return int(self.network.seq_len) - self.prefix_len

    @property
    def total_len(self) -> int:
        return self.token_len + self.prefix_len

    @property
    def has_puzzle_emb(self) -> bool:
        return self.edges.has_puzzle_emb(self)

    @property
    def seq_first(self) -> bool:
        """Whether the network's native activation layout is [seq, batch, dim] (declared by the network)."""
        return bool(getattr(self.network, "seq_first_native", False))

    @nn.nowrap
    def sized_for(self, seq_len: int) -> "TinyRecursiveModel":
        """This model for samples of `seq_len` tokens: itself when its length is set (then it must
        match), else a copy with `seq_len` set (its network does not depend on the length)."""
        if not self.has_seq_len:
            return self.clone(seq_len=int(seq_len))
        if int(seq_len) != self.token_len:
            raise TRMError(f"the tokens have {seq_len} positions per sample but the model takes {self.token_len}; "
                           "pad or cut the inputs to the model's seq_len")
        return self

    # ---- parameters and edges ---------------------------------------------------------------------

    def setup(self):
        self.edges.setup(self)

    def embed(self, tokens, puzzle_ids=None, puzzle_delta=None):
        """x: [batch, prefix + seq_len, dim]. `puzzle_delta` [batch, ndim] is added to the gathered
        puzzle-embedding rows: the train step differentiates it (zeros) to get the rows' gradient
        without a gradient of the whole table."""
        return self.edges.embed(self, tokens, puzzle_ids, puzzle_delta)

    def initial_carry(self, batch_size: int) -> Carry:
        shape = (batch_size, self.total_len, self.dim)
        y0, z0 = self.edges.initial_states(self)
        return Carry(jnp.broadcast_to(y0, shape), jnp.broadcast_to(z0, shape))

    def net(self, h, deterministic: bool = True, native: bool = False):
        """One network application; h is [batch, seq, dim], or the network's native layout if `native`."""
        kwargs = {}
        if native and self.seq_first:
            kwargs["seq_first"] = True
        if _accepts(self.network, "deterministic"):
            kwargs["deterministic"] = deterministic
        return self.network(h, **kwargs)

    def heads(self, y):
        """(logits [batch, seq_len, V], halt_logits [batch]) from the answer state y."""
        logits, halt_logits = self.edges.heads(self, y)
        return logits.astype(jnp.float32), halt_logits.astype(jnp.float32)

    def __call__(self, tokens, puzzle_ids=None):
        """Used by `init`: one pass through every parameter."""
        x = self.embed(tokens, puzzle_ids)
        y, z = self.initial_carry(tokens.shape[0])
        z = self.net(x + y + z)
        y = self.net(y + z)
        return self.heads(y)

    # ---- seed-style conveniences (no Linen scope: they call the pure functions) --------------------

    @nn.nowrap
    def init_params(self, rng, tokens=None) -> dict:
        """Random parameters: `trm_jax.init_params(model, rng, tokens)`.

        Args:
            rng: A PRNG key (`jax.random.key(0)`).
            tokens: A sample input [batch, seq_len], as Flax's `init` takes; its length is used when the
                model sets none.

        Returns:
            The parameter pytree.
        """
        return init_params(self, rng, tokens)

    @nn.nowrap
    def predict(self, params, tokens=None, *, puzzle_ids=None, halt_threshold=None, max_recursion_depth=None,
                halting=None, settle_steps=None, halt_prob_thres=None, max_deep_refinement_steps=None) -> Prediction:
        """Recursive inference with per-sample halting: `trm_jax.predict(model, params, tokens, ...)`.

        The weights are always passed in (the module holds none): `result = Trainer(model, data)()` then
        `model.predict(result.params, tokens)`, where the PyPI package's module owned its weights.

        Args:
            params: The model's parameters.
            tokens: Input token ids [batch, seq_len].
            puzzle_ids: Puzzle identifiers [batch] (official variant with a puzzle-embedding table).
            halt_threshold: A sample stops when sigmoid(halt_logit) >= this; None = the model's.
            max_recursion_depth: Cap on supervision steps; None = the model's.
            halting: The stop rule, "head" or "settled"; None = the model's.
            settle_steps: For `halting="settled"`; None = the model's.
            halt_prob_thres: The PyPI package's name for `halt_threshold`.
            max_deep_refinement_steps: The PyPI package's name for `max_recursion_depth`.

        Returns:
            A `Prediction` (unpacks as `preds, depth`), as `trm_jax.predict` returns.

        Raises:
            TRMError: No `tokens` (the weights come first), or a bad option.
        """
        if tokens is None:
            raise TRMError("model.predict takes the weights first: model.predict(params, tokens), e.g. with "
                           "result = Trainer(model, dataset)(), model.predict(result.params, tokens); a trm_jax "
                           "model holds no weights of its own")
        return predict(self, params, tokens, puzzle_ids=puzzle_ids,
                       halt_threshold=halt_prob_thres if halt_threshold is None else halt_threshold,
                       max_recursion_depth=(max_deep_refinement_steps if max_recursion_depth is None
                                            else max_recursion_depth), halting=halting, settle_steps=settle_steps)
