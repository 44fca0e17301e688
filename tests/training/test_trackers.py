"""Experiment trackers: TensorBoard's event reader and W&B's own record format (its offline run file)
give back the metrics.jsonl records and the config; a failing tracker warns once and changes nothing."""

import glob
import json
import logging
import os
import struct
import sys
import time
import zlib

import numpy as np
import pytest
import yaml
from _train_helpers import tiny_config, tiny_trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # the `test` extra has it

from trm_jax.config import TRMConfig
from trm_jax.errors import ConfigError
from trm_jax.training import TRMTrainingLogger, read_metrics
from trm_jax.training.trackers import TensorBoardTracker, Tracker, WandbTracker

RUN = dict(training=dict(steps=20, log_every=5, eval_every=10), monitoring=dict(enabled=True, interval_steps=10))
TRACKERS_ON = dict(tensorboard=True, wandb=dict(project="trm-tests", mode="offline"))
SYSTEM = {"cpu_percent", "ram_percent", "ram_used_gb", "device_memory_percent", "device_memory_gb",
          "device_peak_memory_gb"}  # the resource monitor's readings (tagged system/<key>)
TIMING = {"timestamp", "tokens_per_sec", "eval_time_s"} | SYSTEM  # differ between two runs of the same config


def _offline_wandb(mp, tmp):
    """W&B offline, its settings and caches in `tmp`, its run files in the run directory."""
    mp.setenv("WANDB_MODE", "offline")
    mp.delenv("WANDB_DIR", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        mp.setenv(var, str(tmp / var.lower()))


def _tracked_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("tracked")
    run_dir = str(tmp / "run")
    with pytest.MonkeyPatch.context() as mp:
        _offline_wandb(mp, tmp)
        trainer = tiny_trainer(tiny_config(run_dir, logging=TRACKERS_ON, **RUN))
        trainer.train()
    return dict(run_dir=run_dir, records=read_metrics(os.path.join(run_dir, "metrics.jsonl"), split=None))


@pytest.fixture(scope="module")
def tracked_run(once, tmp_path_factory):
    """A 20-step run with TensorBoard and W&B (offline) on: (run_dir, metrics.jsonl records); trained once in
    the session (under xdist the module's tests land on both workers)."""
    out = once("tracked_run", lambda: _tracked_run(tmp_path_factory))
    return out["run_dir"], out["records"]


def _expected_tags(record) -> dict:
    """{tag: value} a tracker should show for one metrics.jsonl record."""
    out = {}
    for key, value in record.items():
        if key in ("split", "step", "timestamp") or value is None or isinstance(value, (bool, str)):
            continue
        out[f"{'system' if key in SYSTEM else record['split']}/{key}"] = value
    return out


def test_tensorboard_event_files_hold_the_metrics_and_the_config(tracked_run):
    run_dir, records = tracked_run
    acc = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    expected: dict = {}
    for rec in records:
        for tag, value in _expected_tags(rec).items():
            expected.setdefault(tag, []).append((rec["step"], float(np.float32(value))))  # simple_value is float32
    assert {"train/loss", "eval/exact_accuracy", "system/ram_percent"} <= set(expected)
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, points in expected.items():
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == points, tag
    assert [s for s, _ in expected["train/loss"]] == [5, 10, 15, 20]
    assert [s for s, _ in expected["system/ram_percent"]] == [10, 20]
    text = acc.Tensors("config")[0].tensor_proto.string_val[0].decode()
    with open(os.path.join(run_dir, "config.yaml")) as f:
        assert yaml.safe_load(text.removeprefix("```yaml\n").removesuffix("```")) == yaml.safe_load(f)


def _wandb_records(path):
    """Records of a .wandb file: a ':W&B' header, then LevelDB-log chunks (crc32 of type + data, length,
    type FULL/FIRST/MIDDLE/LAST) in 32 KiB blocks, each record a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2

    block, head = 32768, 7
    with open(path, "rb") as f:
        data = f.read()
    assert data[:head] == struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
    pos, parts = head, b""
    while pos + head <= len(data):
        if block - pos % block < head:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + head:pos + head + length]
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), f"corrupt chunk at byte {pos}"
        pos += head + length
        parts += chunk
        if kind in (1, 4):  # FULL or LAST: a record is complete
            yield wandb_internal_pb2.Record.FromString(parts)
            parts = b""


def test_wandb_offline_run_holds_the_history_and_the_config(tracked_run):
    run_dir, records = tracked_run
    (path,) = glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "run-*.wandb"))
    history, config, project = {}, None, None
    for rec in _wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item}
            history.setdefault(row.pop("_step"), {}).update(row)
        elif kind == "run":
            project, config = rec.run.project, {u.key: json.loads(u.value_json) for u in rec.run.config.update}
    expected: dict = {}
    for rec in records:
        expected.setdefault(rec["step"], {}).update(_expected_tags(rec))
    assert sorted(history) == sorted(expected) == [5, 10, 15, 20]
    for step, values in expected.items():
        got = {tag: history[step][tag] for tag in values}
        assert got == values, step  # full float64 values, as in metrics.jsonl
    assert "eval/exact_accuracy" in history[20] and "system/ram_percent" in history[10]
    assert project == "trm-tests"
    config.pop("_wandb", None)
    with open(os.path.join(run_dir, "config.yaml")) as f:
        assert config == yaml.safe_load(f)


def _same_training(records) -> list:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_failing_trackers_warn_once_and_leave_training_unchanged(tracked_run, tmp_path, monkeypatch, caplog):
    calls = []

    def broken_log(self, step, scalars, wall_time):
        calls.append(step)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TensorBoardTracker, "log", broken_log)
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails as if it were not installed
    run_dir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="trm_jax"):
        result = tiny_trainer(tiny_config(run_dir, logging=TRACKERS_ON, **RUN)).train()
    assert result.step == 20 and calls == [5]  # dropped after its first failure
    warnings = [r.getMessage() for r in caplog.records if "tracker off" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("Weights & Biases tracker off") and "pip install 'trm_jax[wandb]'" in warnings[0]
    assert warnings[1].startswith("TensorBoard tracker off") and "No space left on device" in warnings[1]
    assert "logging.tensorboard: false" in warnings[1]
    records = read_metrics(os.path.join(run_dir, "metrics.jsonl"), split=None)
    assert _same_training(records) == _same_training(tracked_run[1])


class _Recorder(Tracker):
    name = "recorder"
    fix = "nothing to fix"

    def __init__(self, fail_on=()):
        self.calls, self.fail_on = [], fail_on

    def log(self, step, scalars, wall_time):
        self.calls.append(("log", step, dict(scalars)))

    def restart(self, step):
        self.calls.append(("restart", step))
        if "restart" in self.fail_on:
            raise RuntimeError("lost connection")

    def close(self):
        self.calls.append(("close",))


def test_logger_forwards_numbers_only_and_drops_a_tracker_that_raises(tmp_path, caplog):
    good, bad = _Recorder(), _Recorder(fail_on=("restart",))
    logger = TRMTrainingLogger(tmp_path / "metrics.jsonl", trackers=[good, bad])
    with caplog.at_level(logging.WARNING, logger="trm_jax"):
        logger.truncate_after(-1)
    logger.log_train(10, 0.5, 0, dict(loss=0.25, recursion_depth=float("nan"), nonfinite=0), tokens_per_sec=None,
                     ram_percent=41.5)
    logger.log(dict(step=10, stage=1, note="params carried over", learning_rate=None, dim=32), split="curriculum")
    logger.close()
    logger.close()
    assert good.calls == [("restart", -1),
                          ("log", 10, {"train/epoch": 0.5, "train/stage": 0.0, "train/loss": 0.25,
                                       "train/nonfinite": 0.0, "system/ram_percent": 41.5}),
                          ("log", 10, {"curriculum/stage": 1.0, "curriculum/dim": 32.0}),
                          ("close",)]
    assert bad.calls == [("restart", -1), ("close",)]  # closed once on failure, never called again
    (warning,) = [r.getMessage() for r in caplog.records if "tracker off" in r.getMessage()]
    assert warning.startswith("recorder tracker off") and "lost connection" in warning and "nothing to fix" in warning


def test_resumed_run_shows_each_step_once_in_tensorboard(tmp_path):
    path, tb_dir = tmp_path / "metrics.jsonl", str(tmp_path / "tensorboard")
    first = TRMTrainingLogger(path, trackers=[TensorBoardTracker(tb_dir, "seed: 0\n")])
    first.truncate_after(-1)
    for step in (1, 2, 3, 4):  # checkpoint at step 2, then a crash after step 4
        first.log_train(step, 0, 0, dict(loss=float(step)))
    first.close()
    time.sleep(1.01)  # event files sort by their creation second, as a resumed run's do
    second = TRMTrainingLogger(path, trackers=[TensorBoardTracker(tb_dir, "seed: 1\n")])
    second.truncate_after(2)  # what a resume from the step-2 checkpoint does
    for step in (3, 4, 5):
        second.log_train(step, 0, 0, dict(loss=10.0 + step))
    second.close()
    acc = EventAccumulator(tb_dir)
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 1), (2, 2), (3, 13), (4, 14), (5, 15)]
    assert [r["loss"] for r in read_metrics(path)] == [1, 2, 13, 14, 15]
    configs = [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors("config")]
    assert configs == [(0, "```yaml\nseed: 0\n```"), (2, "```yaml\nseed: 1\n```")]  # each session's config


def test_trackers_are_off_by_default_and_on_other_processes(tmp_path):
    config = TRMConfig.from_dict({"logging": {"tensorboard": True, "wandb": {"project": "p"}}})
    off = TRMTrainingLogger(tmp_path / "a" / "metrics.jsonl", enabled=False)  # processes other than 0
    off.start_trackers(config, str(tmp_path / "a"))
    default = TRMTrainingLogger(tmp_path / "b" / "metrics.jsonl")
    default.start_trackers(TRMConfig(), str(tmp_path / "b"))
    assert off.trackers.active == [] and default.trackers.active == []
    assert sorted(os.listdir(tmp_path / "b")) == ["metrics.jsonl"] and not (tmp_path / "a").exists()
    assert TRMConfig.from_dict({"logging": {"wandb": None}}).logging.wandb is None  # null = off
    assert TRMConfig.from_dict({"logging": {"wandb": {}}}).logging.wandb.project is None  # empty = off


@pytest.mark.parametrize("raw, key", [
    ({"tensorboard": "yes"}, "logging.tensorboard"),
    ({"tensorbord": True}, "logging.tensorbord"),
    ({"wandb": {"mode": "offline"}}, "logging.wandb.project"),
    ({"wandb": {"project": "p", "mode": "ofline"}}, "logging.wandb.mode"),
    ({"wandb": {"projet": "p"}}, "logging.wandb.projet"),
    ({"wandb": {"project": " "}}, "logging.wandb.project"),
    ({"wandb": {"project": "p", "init_timeout_s": 0}}, "logging.wandb.init_timeout_s"),
    ({"wandb": "my-project"}, "logging.wandb"),
])
def test_logging_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        TRMConfig.from_dict({"logging": raw})


def test_wandb_tracker_passes_the_run_directory_unless_wandb_dir_is_set(tmp_path, monkeypatch):
    import wandb

    seen = []
    monkeypatch.setattr(wandb, "init", lambda **kw: seen.append(kw) or object())
    monkeypatch.delenv("WANDB_DIR", raising=False)
    WandbTracker("p", directory=str(tmp_path / "run"), init_timeout_s=5.0)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    WandbTracker("p", mode="offline", directory=str(tmp_path / "run"))
    assert seen[0]["dir"] == str(tmp_path / "run") and "dir" not in seen[1]
    assert seen[0]["settings"].init_timeout == 5.0 and seen[1]["mode"] == "offline"
