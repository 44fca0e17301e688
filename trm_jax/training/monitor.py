"""ResourceMonitor: CPU, RAM, accelerator memory and slow batches, warned through `logging`.

Thresholds come from the `monitoring` config section. Readers are injectable so tests (and unusual
platforms) can supply their own.
"""

from __future__ import annotations

import collections
import logging
import statistics
from typing import Callable, Optional, Sequence

import jax
import psutil

from trm_jax.config import MonitoringConfig

log = logging.getLogger(__name__)


def device_memory(devices) -> list[dict]:
    """Per-device {bytes_in_use, bytes_limit, peak_bytes_in_use} where `memory_stats()` is available."""
    out = []
    for d in devices:
        try:
            stats = d.memory_stats()
        except Exception:  # not implemented on some backends
            stats = None
        if stats and stats.get("bytes_limit"):
            out.append(dict(device=str(d), bytes_in_use=int(stats.get("bytes_in_use", 0)),
                            bytes_limit=int(stats["bytes_limit"]),
                            peak_bytes_in_use=int(stats.get("peak_bytes_in_use", 0))))
    return out


class ResourceMonitor:
    """Samples resources every `monitoring.interval_steps` steps and tracks step times.

    `sample()` returns a reading dict and logs a warning for each threshold crossed;
    `record_step(seconds)` warns when a step takes `slow_batch_factor` times the running median. A
    condition that persists is warned about every 10th time, not every time. CPU usage is only warned
    about on accelerators or with `cpu_percent_fn` (JAX computing on the CPU keeps it busy by design).

    Args:
        config: The `monitoring` config section (thresholds, interval, slow-batch window).
        devices: The devices whose memory is read; None = `jax.local_devices()`.
        cpu_percent_fn: Returns the CPU usage in percent; None = psutil's.
        ram_fn: Returns `(RAM percent, RAM used in GiB)`; None = psutil's.
        device_memory_fn: Returns per-device memory dicts (bytes_in_use, bytes_limit,
            peak_bytes_in_use); None = the devices' `memory_stats()`.
        logger: Where warnings go; None = this module's logger.
    """

    def __init__(self, config: MonitoringConfig, devices: Optional[Sequence] = None, *,
                 cpu_percent_fn: Optional[Callable[[], float]] = None,
                 ram_fn: Optional[Callable[[], tuple[float, float]]] = None,
                 device_memory_fn: Optional[Callable[[], list[dict]]] = None,
                 logger: Optional[logging.Logger] = None):
        self.config = config
        self.log = logger or log
        if devices is None:
            devices = jax.local_devices()
        self._cpu = cpu_percent_fn or (lambda: psutil.cpu_percent(interval=None))
        self._ram = ram_fn or self._psutil_ram
        self._dev = device_memory_fn or (lambda: device_memory(devices))
        self._times: collections.deque = collections.deque(maxlen=config.slow_batch_window)
        self.warnings: list[str] = []  # every warning issued, for callers and tests
        self.slow_batches = 0
        self._counts: collections.Counter = collections.Counter()
        # JAX computing on the CPU keeps it busy by design: CPU usage is only a warning on accelerators
        self.warn_cpu = cpu_percent_fn is not None or any(d.platform != "cpu" for d in devices)
        if cpu_percent_fn is None:
            psutil.cpu_percent(interval=None)  # the first call only starts the measurement window

    @staticmethod
    def _psutil_ram() -> tuple[float, float]:
        vm = psutil.virtual_memory()
        return float(vm.percent), vm.used / 2**30

    def _warn(self, kind: str, msg: str) -> None:
        """Warn; a condition that persists is repeated only every `REPEAT`th reading, not every time."""
        self.warnings.append(msg)
        if self._counts[kind] % self.REPEAT == 0:
            self.log.warning(msg + ("" if self._counts[kind] == 0 else f" (seen {self._counts[kind] + 1} times)"))
        self._counts[kind] += 1

    REPEAT = 10

    def due(self, step: int) -> bool:
        """Whether to sample at `step` (monitoring enabled and `step` a multiple of `interval_steps`)."""
        return self.config.enabled and step % self.config.interval_steps == 0

    def sample(self) -> dict:
        """Read CPU, RAM and accelerator memory now, warning for each threshold crossed.

        Returns:
            cpu_percent, ram_percent, ram_used_gb and, where the devices report memory,
            device_memory_percent, device_memory_gb and device_peak_memory_gb (each the largest over the
            devices).
        """
        cfg = self.config
        cpu = float(self._cpu())
        ram_pct, ram_gb = self._ram()
        reading = dict(cpu_percent=cpu, ram_percent=float(ram_pct), ram_used_gb=float(ram_gb))
        devs = self._dev()
        if devs:
            pct = max(100.0 * d["bytes_in_use"] / d["bytes_limit"] for d in devs)
            reading.update(device_memory_percent=pct,
                           device_memory_gb=max(d["bytes_in_use"] for d in devs) / 2**30,
                           device_peak_memory_gb=max(d.get("peak_bytes_in_use", 0) for d in devs) / 2**30)
        if self.warn_cpu and cpu >= cfg.cpu_percent_warn:
            self._warn("cpu", f"CPU usage {cpu:.0f}% >= monitoring.cpu_percent_warn ({cfg.cpu_percent_warn:g}%): "
                       "input pipeline or host work may be the bottleneck")
        if ram_pct >= cfg.ram_percent_warn:
            self._warn("ram", f"RAM usage {ram_pct:.0f}% >= monitoring.ram_percent_warn ({cfg.ram_percent_warn:g}%): "
                       "reduce data.num_train or the batch size")
        if devs and reading["device_memory_percent"] >= cfg.device_memory_percent_warn:
            self._warn("device_memory", f"accelerator memory {reading['device_memory_percent']:.0f}% >= "
                       f"monitoring.device_memory_percent_warn ({cfg.device_memory_percent_warn:g}%): "
                       "reduce the batch size or model.dim")
        return reading

    def record_step(self, seconds: float, step: Optional[int] = None) -> bool:
        """Track one step's wall time, warning for a slow batch.

        Args:
            seconds: The step's wall time.
            step: The step, for the warning.

        Returns:
            Whether the step was slow: more than `slow_batch_factor` times the running median (once a
            few steps are timed).
        """
        if not self.config.enabled:
            return False
        slow = False
        if len(self._times) >= min(5, self._times.maxlen):  # need a few samples for a stable median
            median = statistics.median(self._times)
            if median > 0 and seconds > self.config.slow_batch_factor * median:
                slow = True
                self.slow_batches += 1
                where = f"step {step}" if step is not None else "a step"
                self._warn("slow_batch", f"slow batch: {where} took {seconds:.3f}s, {seconds / median:.1f}x the running median "
                           f"{median:.3f}s (monitoring.slow_batch_factor={self.config.slow_batch_factor:g})")
        self._times.append(seconds)
        return slow
