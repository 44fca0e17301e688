"""The loop's batches: next batches prepared while a step runs, and the live rows of `halted_samples: drop`.

The loop takes one item per step, in step order: the step's batch (on device, laid out for the pmapped
step), its RNG key, and the data iterator's state *after* that batch. A checkpoint saves the state of
the last batch a step consumed, never the iterator's own position, which runs up to `depth` batches
ahead: batches prepared but not consumed when the feed closes (a stop, a stage change, the end) are
dropped, and the next feed starts from the consumed position, so a resumed run sees the same batches.

`depth=0` prepares each batch in the calling thread when it is asked for (the same items, nothing
ahead): the reference the prefetching feed is tested against.

`training.halted_samples: drop`, the PyPI Trainer's batch schedule on trm_jax's compiled step:

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
import queue
import threading
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from trm_jax.models.predict import power_of_two_at_least

_POLL_S = 0.05  # how often a blocked producer or consumer checks that the other side is still there
MIN_ROWS = 8  # halted_samples=drop: below this a step costs about the same, and each row count is one more compilation


class FeedItem(NamedTuple):
    step: int  # the global step this batch is for
    batch: Any  # prepared batch (device arrays)
    key: Any  # the step's RNG key
    iterator_state: dict  # the data iterator's state after this batch


class _Failure(NamedTuple):
    error: BaseException


class BatchFeed:
    """Items for steps [first_step, end_step) from `iterator`; `prepare(batch) -> device batch`,
    `step_key(step) -> key`. Use as an iterator; `close()` (idempotent) stops and joins the thread."""

    def __init__(self, iterator, *, first_step: int, end_step: int, prepare: Callable[[dict], Any],
                 step_key: Callable[[int], Any], depth: int = 2):
        self._iterator, self._prepare, self._step_key = iterator, prepare, step_key
        self._next_step, self._end_step = int(first_step), int(end_step)
        self._closed = threading.Event()
        self._thread = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._produce, name="trm_jax-batch-feed", daemon=True)
            self._thread.start()

    def _item(self, step: int) -> FeedItem:
        batch = next(self._iterator)
        state = self._iterator.state_dict()
        return FeedItem(step, self._prepare(batch), self._step_key(step), state)

    def _produce(self) -> None:
        step = self._next_step
        try:
            while step < self._end_step and not self._closed.is_set():
                if not self._put(self._item(step)):
                    return
                step += 1
        except BaseException as e:  # handed to the consumer, which raises it in the loop's thread
            self._put(_Failure(e))

    def _put(self, item) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self) -> FeedItem:
        if self._next_step >= self._end_step or self._closed.is_set():
            raise StopIteration
        if self._thread is None:
            item = self._item(self._next_step)
        else:
            item = self._get()
        self._next_step += 1
        return item

    def _get(self):
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the batch feed thread ended without a batch") from None
                continue
            if isinstance(item, _Failure):
                self.close()
                raise item.error
            return item

    def close(self) -> None:
        """Stop preparing batches and drop the prepared ones (their device buffers are freed)."""
        self._closed.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:  # unblock a producer waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=_POLL_S)
            while not self._queue.empty():
                self._queue.get_nowait()

    def __enter__(self) -> "BatchFeed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------ halted_samples: drop

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

