"""`training.halted_samples: drop`: the PyPI Trainer's batch schedule on trm_jax's compiled step.

A batch runs supervision steps until every sample in it halted (halt head or the depth cap); each
step is an optimizer step on the samples still running, and then the next batch starts. The train
step (step.py) does the semantics with static shapes: it refills only a fully halted carry and
weights the loss by the live rows. What this module adds is the speed: before each step the loop
takes the live rows out of the carry onto the next power of two rows (at least `MIN_ROWS`), runs the
step on those (one compilation per size), and writes them back, so a batch whose samples mostly
halted costs a small step. The full-size carry stays what checkpoints save (halted rows are inert).

The loop reads the halted flags every step (one small device-to-host copy, as the PyPI Trainer's own
loop does), so steps are not queued ahead. Compaction needs the carry on one device; with several
local devices the steps keep the full batch (still correct, no faster). One process only: every
process would have to agree on when a new batch starts.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import numpy as np

from trm_jax.models.predict import power_of_two_at_least

MIN_ROWS = 8  # below this a step costs about the same, and each row count is one more compilation


def step_rows(halted: np.ndarray, compact: bool = True, min_rows: Optional[int] = None) -> Optional[np.ndarray]:
    """The carry rows the next step runs on, sorted: the live rows padded with halted ones up to a power
    of two (at least `min_rows`, default MIN_ROWS; at most all rows); None when every row halted (a new
    batch starts). Without `compact`, all rows."""
    live = np.flatnonzero(~halted)
    if live.size == 0:
        return None
    rows = min(halted.size, max(MIN_ROWS if min_rows is None else min_rows, power_of_two_at_least(live.size)))
    if not compact or rows == halted.size:
        return np.arange(halted.size)
    return np.sort(np.concatenate([live, np.flatnonzero(halted)[:rows - live.size]]))


@jax.jit
def take_rows(carry, rows):
    """Rows `rows` of a one-device carry ([1, b, ...] leaves)."""
    return jax.tree.map(lambda a: a[:, rows], carry)


@functools.partial(jax.jit, donate_argnums=0)
def put_rows(carry, rows, part):
    """`carry` with its rows `rows` replaced by `part` (what `take_rows` took, after a step)."""
    return jax.tree.map(lambda a, p: a.at[:, rows].set(p), carry, part)

