"""Metrics window summaries, the metrics.jsonl logger, and ResourceMonitor thresholds."""

import json
import logging
import os
import time

import numpy as np
import psutil
import pytest

from trm_jax.config import MonitoringConfig
from trm_jax.training import ResourceMonitor, TRMTrainingLogger, read_metrics, summarize
from trm_jax.training.run_dir import to_jsonable


def step_sums(loss, ce, halt, exact, tc, tn, samples, halted, depth, lr=1e-3, gn=1.0, bad=0):
    return dict(loss=loss, ce=ce, halt_loss=halt, exact=exact, token_correct=tc, token_count=tn, samples=samples,
                halted=halted, recursion_depth=depth, difficulty=0.5 * samples, lr=lr, grad_norm=gn, nonfinite=bad)


def test_summarize_weights_by_samples_tokens_and_halted():
    w = [step_sums(8.0, 6.0, 2.0, 1, 30, 40, 4, 2, 5), step_sums(4.0, 3.0, 1.0, 3, 38, 40, 4, 0, 0, lr=2e-3)]
    s = summarize(w)
    assert s["loss"] == pytest.approx(12 / 8) and s["ce"] == pytest.approx(9 / 8)
    assert s["halt_loss"] == pytest.approx(3 / 8) and s["exact_accuracy"] == pytest.approx(4 / 8)
    assert s["token_accuracy"] == pytest.approx(68 / 80)
    assert s["recursion_depth"] == pytest.approx(5 / 2)  # over the samples that halted
    assert s["halted_fraction"] == pytest.approx(2 / 8) and s["difficulty"] == pytest.approx(0.5)
    assert s["lr"] == 2e-3  # the latest
    assert np.isnan(summarize([step_sums(1, 1, 0, 0, 0, 1, 1, 0, 0)])["recursion_depth"])


def test_logger_writes_jsonl_and_truncates_for_resume(tmp_path):
    path = tmp_path / "m" / "metrics.jsonl"
    with TRMTrainingLogger(path) as lg:
        for step in (10, 20, 30):
            lg.log_train(step, step / 100, 0, dict(loss=1.0 / step, recursion_depth=float("nan")), tokens_per_sec=5.0)
        lg.log_eval(20, 0, dict(exact_accuracy=0.5))
        lg.truncate_after(20)  # a resume from the step-20 checkpoint drops later records
        lg.log_train(30, 0.3, 1, dict(loss=0.5), tokens_per_sec=None)
    lines = path.read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]  # strict JSON: NaN became null
    assert [(r["split"], r["step"]) for r in recs] == [("train", 10), ("train", 20), ("eval", 20), ("train", 30)]
    assert recs[0]["recursion_depth"] is None and recs[0]["epoch"] == 0.1 and recs[0]["tokens_per_sec"] == 5.0
    assert recs[-1]["stage"] == 1 and isinstance(recs[0]["timestamp"], float)
    assert [r["step"] for r in read_metrics(path)] == [10, 20, 30]
    silent = TRMTrainingLogger(tmp_path / "other.jsonl", enabled=False)  # hosts other than 0
    silent.log_train(1, 0, 0, {"loss": 1.0})
    assert not (tmp_path / "other.jsonl").exists()


def test_to_jsonable_gives_strict_json_of_nested_numpy_values():
    # what the trainer stores: a data-iterator state (NumPy ints and arrays, nested) and metric records
    state = {"epoch": np.int64(3), "order": np.arange(4, dtype=np.int32), "rng": {1: (np.uint32(7), 2.5)},
             "loss": np.float32(np.nan), "inf": float("inf"), "ok": np.bool_(True)}
    out = to_jsonable(state)
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # strict JSON, round-trips unchanged
    assert out == {"epoch": 3, "order": [0, 1, 2, 3], "rng": {"1": [7, 2.5]}, "loss": None, "inf": None, "ok": True}
    assert type(out["epoch"]) is int and type(out["order"][0]) is int and type(out["ok"]) is bool


def monitor(cfg=None, cpu=10.0, ram=(20.0, 1.0), dev=None):
    return ResourceMonitor(cfg or MonitoringConfig(), devices=[], cpu_percent_fn=lambda: cpu,
                           ram_fn=lambda: ram, device_memory_fn=lambda: dev or [])


def test_monitor_thresholds(caplog):
    gib = 2**30
    dev = [dict(bytes_in_use=9 * gib, bytes_limit=10 * gib, peak_bytes_in_use=9 * gib),
           dict(bytes_in_use=1 * gib, bytes_limit=10 * gib)]
    quiet = monitor(dev=[dict(bytes_in_use=gib, bytes_limit=10 * gib)])
    r = quiet.sample()
    assert r["cpu_percent"] == 10.0 and r["device_memory_percent"] == pytest.approx(10.0) and not quiet.warnings

    cfg = MonitoringConfig(cpu_percent_warn=90, ram_percent_warn=80, device_memory_percent_warn=85)
    loud = monitor(cfg, cpu=95.0, ram=(81.0, 12.0), dev=dev)
    with caplog.at_level(logging.WARNING, logger="trm_jax.training.monitor"):
        r = loud.sample()
    assert r["device_memory_percent"] == pytest.approx(90.0) and r["device_memory_gb"] == pytest.approx(9.0)
    text = caplog.text
    assert "monitoring.cpu_percent_warn" in text and "monitoring.ram_percent_warn" in text
    assert "monitoring.device_memory_percent_warn" in text and len(loud.warnings) == 3
    # just below every threshold: nothing
    below = monitor(cfg, cpu=89.9, ram=(79.9, 1.0), dev=[dict(bytes_in_use=8 * gib, bytes_limit=10 * gib)])
    below.sample()
    assert not below.warnings


def test_monitor_repeats_persistent_warnings_sparingly(caplog):
    m = monitor(MonitoringConfig(ram_percent_warn=50), ram=(60.0, 1.0))
    with caplog.at_level(logging.WARNING, logger="trm_jax.training.monitor"):
        for _ in range(25):
            m.sample()
    assert len(m.warnings) == 25 and caplog.text.count("RAM usage") == 3  # readings 1, 11, 21


def test_monitor_slow_batches():
    m = monitor(MonitoringConfig(slow_batch_factor=3.0, slow_batch_window=20))
    assert not any(m.record_step(0.1) for _ in range(10))
    assert not m.record_step(0.29)
    assert m.record_step(0.31, step=12) and m.slow_batches == 1 and "step 12" in m.warnings[-1]
    off = monitor(MonitoringConfig(enabled=False))
    assert not any(off.record_step(t) for t in [0.1] * 10 + [10.0]) and not off.due(50)


def _proc_stat_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat: user nice system idle iowait irq softirq steal
    [guest guest_nice]; guest time is already inside user/nice, idle and iowait are not busy."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    t += [0] * (10 - len(t))
    total = sum(t[:8])
    return total - t[3] - t[4], total


def _meminfo_used_percent() -> float:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return 100.0 * (info["MemTotal"] - info["MemAvailable"]) / info["MemTotal"]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads the kernel's CPU and memory counters (Linux)")
def test_real_readers_measure_this_machine():
    """The default readers against the kernel's own counters: the CPU reading is the machine's busy
    share since the previous reading (a busy loop of this process puts a floor under it), the RAM
    reading is the share of memory not available."""
    m = ResourceMonitor(MonitoringConfig(), devices=[])  # starts the CPU window
    busy0, total0 = _proc_stat_cpu()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < 0.5:  # busy loop: at least this process's CPU time is busy
        pass
    wall, own = time.perf_counter() - wall0, time.process_time() - cpu0
    busy1, total1 = _proc_stat_cpu()
    r = m.sample()
    kernel = 100.0 * (busy1 - busy0) / max(total1 - total0, 1)
    # same window up to microseconds; /proc/stat counts in 10 ms jiffies
    assert r["cpu_percent"] == pytest.approx(kernel, abs=5), (r, kernel)
    assert r["cpu_percent"] >= 100.0 * own / (wall * os.cpu_count()) - 5, (r, own, wall)
    assert 0 <= r["cpu_percent"] <= 100
    assert r["ram_percent"] == pytest.approx(_meminfo_used_percent(), abs=2)
    assert 0 < r["ram_percent"] <= 100 and r["ram_used_gb"] > 0
    assert r["ram_used_gb"] == pytest.approx(psutil.virtual_memory().used / 2**30, abs=0.5)
