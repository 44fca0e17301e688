"""Config tree: YAML loading, overrides, and one clear error per bad value naming its key path; a task's
own keys are data the task parses; the Trainer's keyword arguments take the same coercion path."""

import os

import numpy as np
import pytest
import yaml

from trm_jax.config import TRMConfig, apply_overrides, load_config
from trm_jax.errors import ConfigError
from trm_jax.tasks import get_task
from _paths import REPO

ROOT_CONFIGS = ["config.yaml"]


def test_defaults_round_trip(tmp_path):
    cfg = TRMConfig()
    path = tmp_path / "c.yaml"
    cfg.save(str(path))
    assert load_config(str(path)) == cfg
    assert TRMConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_parse_yaml_values():
    cfg = load_config(None, ["model.dim=32", "training.learning_rate=3e-4", "rag.enabled=true",
                             "curriculum.stages=[{steps: 5, seq_len: 16}, {steps: 5}]"])
    assert cfg.model.dim == 32 and cfg.training.learning_rate == 3e-4 and cfg.rag.enabled is True
    assert cfg.curriculum.stages[0].seq_len == 16 and len(cfg.curriculum.stages) == 2
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["model.dim"])


def test_steps_override_with_stages_is_refused_not_ignored():
    stages = "curriculum.stages=[{steps: 5}, {steps: 7}]"
    with pytest.raises(ConfigError, match=r"training.steps.*2 stage\(s\).*curriculum.stages=\[\]"):
        load_config(None, [stages, "training.steps=20"])
    cfg = load_config(None, [stages, "training.steps=20", "curriculum.stages=[]"])
    assert cfg.training.steps == 20 and cfg.curriculum.stages == ()
    root = REPO
    default = load_config(os.path.join(root, "config.yaml"), ["training.batch_size=8"])  # other overrides are fine
    assert default.curriculum.stages and default.training.batch_size == 8


@pytest.mark.parametrize("raw, match", [
    ({"modle": {}}, r"unknown config key 'modle'.*Did you mean 'model'"),
    ({"model": {"dimm": 3}}, r"'model.dimm'.*Did you mean 'model.dim'"),
    ({"model": {"dim": "big"}}, r"'model.dim': expected an integer"),
    ({"model": {"dim": -4}}, r"'model.dim': must be > 0"),
    ({"model": {"num_refinement_blocks": 1}}, r"'model.num_refinement_blocks': T must be >= 2"),
    ({"model": {"network": "mlp"}}, r"'model.network': 'mlp' is not one of"),
    ({"model": {"network": "transformer", "dim": 30, "num_heads": 4}}, r"'model.num_heads'"),
    ({"training": {"learning_rate": 0}}, r"'training.learning_rate': must be > 0"),
    ({"training": {"ema_decay": 1.5}}, r"'training.ema_decay'"),
    ({"training": {"progress_bar": "yes"}}, r"'training.progress_bar': expected true/false"),
    ({"data": {"train_path": "/no/such/file.jsonl"}}, r"'data.train_path': file not found"),
    ({"curriculum": {"stages": [{"seq_len": 8}]}}, r"'curriculum.stages\[0\]': give exactly one of"),
    ({"curriculum": {"stages": [{"steps": 3, "dim": 0}]}}, r"'curriculum.stages\[0\].dim'"),
    ({"model": 3}, r"'model': expected a mapping"),
])
def test_bad_values_name_their_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        TRMConfig.from_dict(raw)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    evil = tmp_path / "evil.yaml"  # safe_load refuses arbitrary Python objects
    evil.write_text("model: !!python/object/apply:os.system ['echo hi']")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(evil))


def test_shipped_configs_load():
    import glob
    import os
    root = REPO
    paths = [os.path.join(root, p) for p in ROOT_CONFIGS] + glob.glob(os.path.join(root, "configs", "*.yaml"))
    found = [p for p in paths if os.path.exists(p)]
    assert found
    for p in found:
        with open(p) as f:
            assert isinstance(yaml.safe_load(f), dict)
        get_task(load_config(p))  # the task's own keys too


def test_the_config_holds_a_tasks_keys_as_data():
    raw = {"data": {"task": "maze", "seq_len": 144, "maze_size": 12, "unknown_to_the_config": [1, {"a": 2}]}}
    cfg = TRMConfig.from_dict(raw)  # the config does not know the task's keys: kept as written, read-only
    assert dict(cfg.data.options) == {"maze_size": 12, "unknown_to_the_config": (1, {"a": 2})}
    assert cfg.to_dict()["data"]["unknown_to_the_config"] == [1, {"a": 2}]
    assert hash(cfg) == hash(TRMConfig.from_dict(raw))
    with pytest.raises(ConfigError, match=r"unknown config key 'data.unknown_to_the_config' for data.task 'maze'"):
        get_task(cfg)  # the task parses them when it is built
    with pytest.raises(ConfigError, match=r"'data.seq_len': must be > 0"):  # the shared keys: checked on load
        load_config(None, ["data.task=maze", "data.seq_len=0", "data.maze_size=oops"])


def test_a_missing_training_file_is_needed_only_to_read_data(tmp_path):
    task = get_task(TRMConfig.from_dict({"data": {"task": "jsonl"}}))  # a trained model answers without it
    with pytest.raises(ConfigError, match=r"'data.train_path': task 'jsonl' needs data.train_path"):
        task.samples("train")


def test_trainer_arguments_take_the_config_path():
    from trm_jax.models import MLPMixer1D, TinyRecursiveModel
    from trm_jax.training.pypi import config_for_model

    model = TinyRecursiveModel(dim=8, num_tokens=5, network=MLPMixer1D(8, 1, 4), num_refinement_blocks=2)
    data = (np.zeros((8, 4), np.int32), np.zeros((8, 4), np.int32))
    _, cfg, _, _ = config_for_model(model, data, steps=np.int64(3), learning_rate=np.float32(0.5),
                                    early_stopping={"patience": 2}, ema_decay_rate=0.5)
    assert (cfg.training.steps, cfg.training.learning_rate, cfg.training.ema_decay) == (3, 0.5, 0.5)
    assert cfg.training.early_stopping.patience == 2 and cfg.model.num_tokens == 5 and cfg.data.seq_len == 4
    assert cfg.curriculum.stages == ()
    with pytest.raises(ConfigError, match=r"'training.early_stopping.patiense'.*Did you mean"):
        config_for_model(model, data, early_stopping={"patiense": 2})
    with pytest.raises(ConfigError, match=r"'training.warmup_steps': expected an integer"):
        config_for_model(model, data, warmup_steps="ten")
