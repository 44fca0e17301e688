"""training.halted_samples=drop: the rows a step runs on, compaction equal to the full step, and the
Trainer's schedule (batches consumed only when every sample halted, resume, one process only)."""

import jax
import numpy as np
import pytest
from test_step import L, make_batch, tcfg, tiny_model

import trm_jax
from trm_jax.errors import ConfigError
from trm_jax.models import init_params
from trm_jax.training import distributed as dist
from trm_jax.training import feed
from trm_jax.training.state import make_optimizer, make_train_state
from trm_jax.training.step import StepSpec, TrainCarry, make_train_step, pmap_train_step


def test_step_rows_pads_the_live_rows_to_a_power_of_two_with_halted_ones():
    halted = np.ones(32, bool)
    assert feed.step_rows(halted) is None  # a new batch
    halted[[3, 9, 20]] = False
    rows = feed.step_rows(halted, min_rows=4)
    assert rows.size == 4 and set([3, 9, 20]) <= set(rows) and (np.diff(rows) > 0).all()
    assert halted[np.setdiff1d(rows, [3, 9, 20])].all()  # the padding is inert
    assert feed.step_rows(halted).size == feed.MIN_ROWS
    halted[:20] = False  # 21 live rows -> 32 = all
    np.testing.assert_array_equal(feed.step_rows(halted), np.arange(32))
    halted[:] = True
    halted[0] = False
    np.testing.assert_array_equal(feed.step_rows(halted, compact=False), np.arange(32))


def test_a_step_on_the_compacted_rows_equals_the_full_step():
    b = 16
    model = tiny_model(halt_threshold=1.0)
    training = tcfg(halted_samples="drop")
    spec = StepSpec.create(training, total_steps=10, global_batch=b, peak_lr=training.learning_rate)
    step = pmap_train_step(make_train_step(model, spec))
    params = jax.device_get(init_params(model, jax.random.PRNGKey(0)))
    host_state = jax.device_get(make_train_state(params, make_optimizer(training)))
    data, rng = make_batch(1, b), np.random.default_rng(0)
    halted = np.ones(b, bool)
    halted[[2, 7, 11]] = False
    host = TrainCarry(rng.normal(size=(b, L, 16)).astype(np.float32), rng.normal(size=(b, L, 16)).astype(np.float32),
                      data["inputs"], data["labels"], np.zeros(b, np.int32), data["difficulty"],
                      np.array([1, 2] * 8, np.int32), halted)
    key = np.asarray(jax.random.key_data(jax.random.PRNGKey(4)))
    put = lambda tree: dist.put_sharded(dist.shard(tree))  # noqa: E731
    full_state, full_carry, full_m = step(dist.replicate(host_state), put(host), put(make_batch(2, b)), key)

    rows = feed.step_rows(halted, min_rows=4)
    carry = put(host)
    part = feed.take_rows(carry, rows)
    idle = put(make_batch(5, rows.size))  # never read: no row is refilled
    part_state, part, part_m = step(dist.replicate(host_state), part, idle, key)
    carry = feed.put_rows(carry, rows, part)

    close = lambda a, c: np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-6)  # noqa: E731
    jax.tree.map(close, dist.unreplicate(part_state.params), dist.unreplicate(full_state.params))
    for k in ("loss", "samples", "halted", "exact", "token_count"):
        close(dist.unreplicate(part_m)[k], dist.unreplicate(full_m)[k])
    got, want = TrainCarry(*dist.unshard(tuple(carry))), TrainCarry(*dist.unshard(tuple(full_carry)))
    live = ~halted
    for a, c in zip(got, want):
        close(np.asarray(a)[live], np.asarray(c)[live])
    np.testing.assert_array_equal(got.halted, want.halted)


SEQ = 16


def _data(n=64, seq=SEQ, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, 11, (n, seq)).astype(np.int32)
    return inputs, inputs[:, ::-1].copy()


class Rows(trm_jax.Callback):
    """Records each step's trained rows (host metrics every step)."""

    metrics_every = 1

    def __init__(self):
        self.samples = []

    def on_step(self, trainer, step, metrics):
        self.samples.append(int(metrics["samples_per_step"]))


def _trainer(tmp_path, name, steps, callbacks=(), resume=False, **kw):
    model = trm_jax.TinyRecursiveModel(dim=16, num_tokens=11, network=trm_jax.MLPMixer1D(dim=16, depth=1, seq_len=SEQ),
                                       num_refinement_blocks=2, num_latent_refinements=1, max_recursion_depth=5,
                                       halt_threshold=0.0)  # the head always halts: exploration sets the depths
    options = dict(steps=steps, batch_size=4, learning_rate=1e-3, halt_exploration_prob=1.0, progress_bar=False,
                   halted_samples="drop", checkpoint_every=7, log_every=7, eval_every=10 ** 6, seed=3)
    options.update(kw)
    return trm_jax.Trainer(model, _data(), run_dir=str(tmp_path / name), callbacks=list(callbacks), resume=resume,
                           **options)


def test_drop_schedule_shrinks_the_batch_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(feed, "MIN_ROWS", 2)  # steps on 4 and 2 rows
    rows = Rows()
    full = _trainer(tmp_path, "full", 14, [rows]).train()
    # each batch starts with all 4 rows and shrinks as its samples reach their (random) depths; the
    # next one starts only once all halted (at most max_recursion_depth = 5 steps)
    n = rows.samples
    starts = [0] + [i for i in range(1, len(n)) if n[i] > n[i - 1]]
    assert len(starts) >= 3 and min(n) < 4, n
    for a, b in zip(starts, starts[1:] + [len(n)]):
        assert n[a] == 4 and n[a:b] == sorted(n[a:b], reverse=True) and b - a <= 5, n
    _trainer(tmp_path, "cut", 7).train()
    resumed = _trainer(tmp_path, "cut", 14, resume=True).train()
    for got, want in ((resumed.params, full.params), (resumed.raw_params, full.raw_params)):
        jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-7), got, want)


def test_drop_is_refused_with_several_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "topology", lambda: (0, 2, 1, 2))
    with pytest.raises(ConfigError, match="halted_samples=drop runs in one process"):
        _trainer(tmp_path, "two", 4)
