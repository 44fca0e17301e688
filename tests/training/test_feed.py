"""The training loop's batch feed: prefetched batches are the batches, keys and data positions the loop would
prepare itself, in order; a closed feed restarts from the consumed position; errors reach the loop; and a
trainer gives the same run with and without prefetching."""

import threading

import jax
import numpy as np
import pytest
from _train_helpers import tiny_config, tiny_trainer, train_losses

from trm_jax.data.datasets import ArrayDataset
from trm_jax.data.iterators import BatchIterator
from trm_jax.training.feed import BatchFeed


def _dataset(n=20, seq=6):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 9, (n, seq)).astype(np.int32)

    def augment(inputs, labels, rng):  # a random relabelling per batch: the augmentation stream is checked too
        shift = rng.integers(0, 3)
        return inputs + shift, labels + shift

    return ArrayDataset(x, x[:, ::-1].copy(), np.zeros(n, np.float32), augment=augment)


def _feed(iterator, depth, first=0, end=12):
    return BatchFeed(iterator, first_step=first, end_step=end, prepare=lambda b: {k: v.copy() for k, v in b.items()},
                     step_key=lambda s: np.array([s, 7 * s], np.uint32), depth=depth)


def _items(feed):
    with feed:
        return list(feed)


def _same(a, b):
    assert [i.step for i in a] == [i.step for i in b]
    for x, y in zip(a, b):
        assert x.iterator_state == y.iterator_state
        np.testing.assert_array_equal(x.key, y.key)
        for k in x.batch:
            np.testing.assert_array_equal(x.batch[k], y.batch[k])


def test_prefetched_items_equal_the_ones_prepared_in_the_loop_thread():
    reference = _items(_feed(BatchIterator(_dataset(), 8, seed=3), depth=0))
    _same(_items(_feed(BatchIterator(_dataset(), 8, seed=3), depth=2)), reference)
    assert [i.step for i in reference] == list(range(12))
    # a batch of 8 from 20 rows: epochs are crossed, the state after batch k is k*8 items into the stream
    assert [(s["epoch"], s["position"]) for s in (i.iterator_state for i in reference[:3])] == [(0, 8), (0, 16), (1, 4)]


def test_a_closed_feed_restarts_from_the_consumed_batch():
    """Batches prepared ahead but not consumed are dropped: a feed restarted from the state of the last
    consumed batch continues exactly as one feed over all steps (what a checkpoint and resume do)."""
    reference = _items(_feed(BatchIterator(_dataset(), 8, seed=3), depth=0))
    it = BatchIterator(_dataset(), 8, seed=3)
    feed = _feed(it, depth=3)
    first = [next(feed) for _ in range(5)]
    threading.Event().wait(0.2)  # let the thread run ahead of the consumer
    feed.close()
    assert not feed._thread.is_alive()
    assert it.state_dict() != first[-1].iterator_state  # the iterator itself ran ahead
    it.load_state_dict(first[-1].iterator_state)
    rest = _items(_feed(it, depth=3, first=5))
    _same(first + rest, reference)


def test_an_error_while_preparing_reaches_the_loop_after_the_good_batches():
    class Failing:
        def __init__(self):
            self.n = 0

        def __next__(self):
            self.n += 1
            if self.n == 4:
                raise ValueError("bad row 4")
            return {"x": np.full(2, self.n)}

        def state_dict(self):
            return {"n": self.n}

    feed = _feed(Failing(), depth=2)
    got = [next(feed).batch["x"][0] for _ in range(3)]
    assert got == [1, 2, 3]
    with pytest.raises(ValueError, match="bad row 4"):
        next(feed)
    assert not feed._thread.is_alive()


def test_trainer_with_and_without_prefetch_runs_the_same_steps(tmp_path):
    """The same losses and final params whether batches are prepared ahead (2) or in the loop (0)."""
    results = {}
    for depth in (0, 2):
        trainer = tiny_trainer(tiny_config(tmp_path / f"d{depth}", training=dict(steps=6)))
        trainer.prefetch_batches = depth
        results[depth] = (trainer.train(), train_losses(tmp_path / f"d{depth}"))
    (a, la), (b, lb) = results[0], results[2]
    np.testing.assert_array_equal(la, lb)
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    assert len(la) == 6 and a.step == b.step == 6


def test_loop_times_each_step_for_the_monitor(tmp_path):
    """The loop waits only on the step QUEUE_DEPTH (2) behind the newest; those waits time one step each
    for the slow-step warning, the first two (compilation) left out."""
    trainer = tiny_trainer(tiny_config(tmp_path, training=dict(steps=12, log_every=100)))
    timed = []
    trainer.run.monitor.record_step = lambda seconds, step=None: timed.append((step, seconds))
    trainer.train()
    assert [s for s, _ in timed] == list(range(3, 11))  # steps 11 and 12 are read by the final window
    assert all(t >= 0 for _, t in timed)
