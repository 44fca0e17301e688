"""A task family whose rule is knowable only from the demonstrations (used by test_adapt).

Each puzzle identifier owns a random permutation of the symbol tokens; a sample is a random string of
symbols (input) and the same string with every symbol mapped through the permutation (label). Nothing
in an input says which permutation applies: a model learns it from the identifier's row of its
puzzle-embedding table, so a new identifier is answerable only after adapting to its demonstrations.
"""

from __future__ import annotations

import numpy as np

from trm_jax.config import ModelConfig
from trm_jax.models import make_model

NUM_SYMBOLS = 3  # symbol tokens 1..NUM_SYMBOLS (token 0 is unused)
VOCAB = NUM_SYMBOLS + 1
SEQ_LEN = 8


def permutations(identifiers, seed: int) -> dict[int, np.ndarray]:
    """identifier -> token map [VOCAB] (0 -> 0, symbols permuted), drawn per identifier."""
    maps = {}
    for pid in identifiers:
        rng = np.random.default_rng([seed, int(pid)])
        maps[int(pid)] = np.concatenate([[0], 1 + rng.permutation(NUM_SYMBOLS)]).astype(np.int32)
    return maps


def samples(maps: dict[int, np.ndarray], per_identifier: int, seed: int) -> dict[str, np.ndarray]:
    """`per_identifier` (input, label) pairs for every identifier of `maps`: inputs, labels, puzzle_ids."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.asarray(sorted(maps), np.int32), per_identifier)
    inputs = rng.integers(1, VOCAB, (len(ids), SEQ_LEN)).astype(np.int32)
    labels = np.stack([maps[int(p)][x] for p, x in zip(ids, inputs)])
    return dict(inputs=inputs, labels=labels, puzzle_ids=ids)


def model(num_identifiers: int, **overrides):
    """A small official-variant transformer with a puzzle-embedding table of `num_identifiers` rows."""
    cfg = dict(variant="official", network="transformer", dim=32, depth=1, num_heads=2, puzzle_emb_ndim=32,
               puzzle_emb_len=1, num_puzzle_identifiers=num_identifiers, num_refinement_blocks=2,
               num_latent_refinements=1, max_recursion_depth=2, pos_encodings="rope")
    cfg.update(overrides)
    return make_model(ModelConfig(**cfg), VOCAB, SEQ_LEN)
