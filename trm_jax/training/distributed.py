"""Devices, hosts and the data layout of the pmapped step.

Layout: the global batch of B rows is split over `process_count()` hosts (host p holds rows
[p*B/P, (p+1)*B/P)) and, within a host, over its local devices in `jax.local_devices()` order. Each
pmapped array has a leading local-device axis.
"""

from __future__ import annotations

import logging

import jax
import numpy as np

from trm_jax.config import DistributedConfig
from trm_jax.errors import ConfigError, TRMError

log = logging.getLogger(__name__)


def initialize(cfg: DistributedConfig) -> None:
    """Start multi-host JAX (`jax.distributed.initialize`) when configured; call before any JAX use.

    With `coordinator_address` unset, JAX auto-detects the cluster (TPU pods, SLURM, ...).
    """
    if not cfg.enabled or jax.distributed.is_initialized():  # a second trainer in the process: already done
        return
    kwargs = {}
    if cfg.coordinator_address is not None:
        kwargs = dict(coordinator_address=cfg.coordinator_address, num_processes=cfg.num_processes,
                      process_id=cfg.process_id)
    if cfg.initialization_timeout_s is not None:
        kwargs["initialization_timeout"] = int(cfg.initialization_timeout_s)
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        if "before any JAX computations" in str(e) or "should only be called once" in str(e):
            raise TRMError(f"distributed.enabled: jax.distributed.initialize failed ({e}). Start training in a "
                           "fresh process: JAX must not have run anything before it.") from None
        raise
    log.info("jax.distributed initialized: process %d of %d, %d local / %d global devices",
             jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())


def topology() -> tuple[int, int, int, int]:
    """(process_index, process_count, local_device_count, global_device_count)."""
    return jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count()


def check_batch(batch_size: int, key: str) -> int:
    """Rows per device; a batch not divisible by the global device count is a config error."""
    n = jax.device_count()
    if batch_size % n:
        lo, hi = (batch_size // n) * n, -(-batch_size // n) * n
        fix = f"{lo} or {hi}" if lo > 0 else f"{hi}"
        raise ConfigError(f"config key '{key}': batch size {batch_size} is not divisible by the {n} devices "
                          f"({jax.process_count()} host(s) x {jax.local_device_count()} local); use e.g. {fix}")
    return batch_size // n


def shard(tree):
    """Host arrays with B_host rows -> [local_devices, B_host/local_devices, ...]."""
    n = jax.local_device_count()
    return jax.tree.map(lambda x: np.asarray(x).reshape((n, -1) + np.shape(x)[1:]), tree)


def unshard(tree):
    """Inverse of `shard` for pmapped outputs: [local_devices, b, ...] -> host NumPy [B_host, ...]."""
    return jax.tree.map(lambda x: np.concatenate([np.asarray(s.data) for s in _local_shards(x)], axis=0)
                        .reshape((-1,) + x.shape[2:]), tree)


def _local_shards(x):
    shards = [s for s in x.addressable_shards]
    # device order of the leading pmap axis = jax.local_devices() order = the shard index order
    return sorted(shards, key=lambda s: s.index[0].start or 0)


def _local_sharding():
    """Leading axis over the local devices, named like pmap's axis: pmap outputs carry this sharding, so
    arrays placed with it hit the same compiled step (another axis name would compile it twice)."""
    devices = jax.local_devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    return devices, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def replicate(tree):
    """Put a copy on each local device (leading axis = local devices) for pmap."""
    devices, sharding = _local_sharding()

    def put(x):
        x = np.asarray(x)
        bufs = [jax.device_put(x[None], d) for d in devices]
        return jax.make_array_from_single_device_arrays((len(devices),) + x.shape, sharding, bufs)

    return jax.tree.map(put, tree)


def put_sharded(tree):
    """Host arrays [local_devices, ...] -> one slice per local device (what pmap outputs look like)."""
    devices, sharding = _local_sharding()

    def put(x):
        x = np.asarray(x)
        bufs = [jax.device_put(x[i:i + 1], d) for i, d in enumerate(devices)]
        return jax.make_array_from_single_device_arrays(x.shape, sharding, bufs)

    return jax.tree.map(put, tree)


def unreplicate(tree):
    """First local replica of a pmapped/replicated tree, as host NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(_local_shards(x)[0].data)[0], tree)


def global_batch_sharding():
    """1-D mesh over all devices (all hosts) sharding the leading (batch) axis; used for checkpoints."""
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def to_global(tree):
    """Host-local rows -> globally sharded arrays (each host contributes its rows); for Orbax."""
    sharding = global_batch_sharding()
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def from_global(tree):
    """Globally sharded arrays -> this host's rows as NumPy, in host order."""
    def local(x):
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
        rows, seen = [], set()
        for s in shards:
            start = s.index[0].start or 0
            if start not in seen:  # replicated shards would repeat rows
                seen.add(start)
                rows.append(np.asarray(s.data))
        return np.concatenate(rows, axis=0)

    return jax.tree.map(local, tree)
