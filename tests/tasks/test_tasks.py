"""Tasks: a task defined outside the package trains through scripts/train.py and answers through
trm_jax.infer; no module outside trm_jax/tasks (and the registry) compares a task name; registry errors;
task keys in the config (flat in YAML, round trip, other tasks' keys in run configs written before tasks
had their own)."""

import ast
import dataclasses
import importlib.metadata
import logging
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

import trm_jax
from tests._toy_task import LETTERS, ToyTask
from trm_jax.config import TRMConfig, load_config
from trm_jax.errors import ConfigError
from trm_jax.models import predict
from trm_jax.tasks import BUILTIN_TASKS, get_task, task_class, task_names
from trm_jax.tasks.base import Task
from _paths import REPO

ROOT = REPO
TOY = "tests._toy_task:ToyTask"

# ------------------------------------------------------------------------------------ a task of your own

TOY_RUN = dict(
    model=dict(dim=16, depth=1, num_latent_refinements=1, num_refinement_blocks=2, max_recursion_depth=2),
    data=dict(task=TOY, seq_len=4, num_train=64, num_eval=16, toy_word_len=3),
    training=dict(batch_size=8, steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2, log_every=1,
                  progress_bar=False),
    monitoring=dict(enabled=False),
)


def test_toy_task_trains_through_the_script_and_answers_through_infer(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY_RUN))
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(config),
                          "--run-dir", str(run_dir), "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "held-out exact accuracy:" in out.stdout and "16 samples" in out.stdout  # the toy eval split
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    assert saved["task"] == TOY and saved["toy_word_len"] == 3 and "code_num_facts" not in saved

    p = trm_jax.load(run_dir)
    assert isinstance(get_task(p.config), ToyTask) and get_task(p.config).options.toy_word_len == 3
    assert p.tokenizer.name == "toy" and p.num_tokens == len(LETTERS) + 1
    queries = ["ABC", "DDA", "CB"]
    answers = trm_jax.infer(p, queries)
    # independently: letters -> ids 1..4 (pad 0), predict, the first len(query) tokens back to letters
    ids = np.zeros((4, 4), np.int32)
    for i, q in enumerate(queries):
        ids[i, :len(q)] = [LETTERS.index(c) + 1 for c in q.lower()]
    tokens = np.asarray(predict(p.model, p.params, ids).tokens)
    expected = ["".join(LETTERS[t - 1] for t in row[:len(q)] if t).upper() for q, row in zip(queries, tokens)]
    assert answers == expected and all(set(a) <= set(LETTERS.upper()) for a in answers)
    details = trm_jax.infer(p, "ABC", return_details=True)
    assert details["answer"] == answers[0] and 1 <= details["recursion_depth"] <= 2
    with pytest.raises(trm_jax.TRMError, match="not in the 'toy' tokenizer's alphabet"):
        trm_jax.infer(p, "XYZ")  # the task's own encode, its tokenizer's error
    from trm_jax.evaluation import evaluate
    assert evaluate(p)["num_samples"] == 16  # the default evaluation, on the task's own eval split


# ------------------------------------------------------------------------------------ no task names outside tasks/

def _task_name_comparisons(source: str, names) -> list[int]:
    """Lines that compare something with a task name or read `.task` in a comparison, or look a task up in a
    dict keyed by task names."""
    names = set(names)
    lines = []

    def names_in(node) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_in(e) for e in node.elts)
        return isinstance(node, ast.Attribute) and node.attr == "task"

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(names_in(x) for x in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and sum(isinstance(k, ast.Constant) and k.value in names
                                                for k in node.keys) >= 2:
            lines.append(node.lineno)
        elif isinstance(node, ast.match_case) and names_in(getattr(node.pattern, "value", None)):
            lines.append(node.pattern.lineno)
    return lines


def test_scanner_finds_planted_comparisons():
    names = BUILTIN_TASKS
    assert _task_name_comparisons('if cfg.data.task == "maze":\n    pass\n', names) == [1]
    assert _task_name_comparisons('x = t in ("sudoku", "maze")\n', names) == [1]
    assert _task_name_comparisons('x = "arc" != kind\n', names) == [1]
    assert _task_name_comparisons('f = {"sudoku": a, "maze": b}[kind]\n', names) == [1]
    assert _task_name_comparisons('match kind:\n    case "code":\n        pass\n', names) == [2]
    assert _task_name_comparisons('x = name == "char"\ny = read(path, "maze")\n', names) == []


def test_no_module_outside_tasks_compares_a_task_name():
    """Only the task modules (trm_jax/tasks/) and the registry (trm_jax/tasks/__init__.py) read a task name."""
    found = []
    for folder in ("trm_jax", "scripts", "benchmarks"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            rel_dir = os.path.relpath(dirpath, ROOT)
            if rel_dir.split(os.sep)[:2] == ["trm_jax", "tasks"]:
                continue
            for f in files:
                path = os.path.join(dirpath, f)
                if f.endswith(".py") and os.path.relpath(path, ROOT) != os.path.join("trm_jax", "task_registry.py"):
                    with open(path) as fh:
                        found += [f"{os.path.relpath(path, ROOT)}:{line}"
                                  for line in _task_name_comparisons(fh.read(), BUILTIN_TASKS)]
    assert not found, "task names compared outside trm_jax/tasks (ask get_task(config)): " + ", ".join(found)


# ------------------------------------------------------------------------------------ registry

def test_registry_resolves_builtin_and_import_path_tasks():
    assert task_names()[:len(BUILTIN_TASKS)] == tuple(BUILTIN_TASKS)
    for name in BUILTIN_TASKS:
        cls = task_class(name)
        assert issubclass(cls, Task) and dataclasses.is_dataclass(cls.Options)
    assert task_class(TOY) is ToyTask
    assert [n for n in BUILTIN_TASKS if task_class(n).uses_retrieval] == ["code", "jsonl"]


@pytest.mark.parametrize("name, match", [
    ("sudoko", r"'data.task': unknown task 'sudoko'. Did you mean 'sudoku'\?.*'my_package.my_module:MyTask'"),
    ("no_such_module_xyz:Task", r"'data.task': no module 'no_such_module_xyz'"),
    ("tests._toy_task:NoSuchTask", r"module 'tests._toy_task' has no 'NoSuchTask'"),
    ("tests._toy_task:ToyOptions", r"is not a subclass of trm_jax.tasks.base.Task"),
    (":ToyTask", r"not an import path"),
])
def test_registry_errors(name, match):
    with pytest.raises(ConfigError, match=match):
        task_class(name)
    with pytest.raises(ConfigError, match=match):
        get_task(TRMConfig.from_dict({"data": {"task": name}}))


def test_a_task_may_not_redefine_shared_keys():
    with pytest.raises(ConfigError, match=r"task .*ClashingTask' redefines the shared data keys \['seq_len'\]"):
        get_task(TRMConfig.from_dict({"data": {"task": "tests._toy_task:ClashingTask"}}))


def test_entry_point_tasks(monkeypatch):
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") == "trm_jax.tasks":
            return [importlib.metadata.EntryPoint("toy", TOY, "trm_jax.tasks")]
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "toy" in task_names() and task_class("toy") is ToyTask
    assert get_task(TRMConfig.from_dict({"data": {"task": "toy", "toy_word_len": 2}})).options.toy_word_len == 2


# ------------------------------------------------------------------------------------ config

TASK_KEYS = {  # a non-default value of each built-in task's own keys
    "code": {"code_context": "oracle", "code_num_facts": 64},
    "sudoku": {"num_aug": 3, "seq_len": 81},
    "maze": {"maze_size": 9, "maze_min_path_len": 5, "seq_len": 81},
    "arc": {"arc_source": "arc-agi-2", "arc_extra_train_sources": ["a", "b"], "arc_num_aug": 7, "arc_max_tasks": 2,
            "arc_pass_ks": [1, 3], "arc_allow_eval_leak": True, "seq_len": 900},
}


@pytest.mark.parametrize("task", sorted(TASK_KEYS))
def test_task_keys_are_data_round_trip_flat_and_parse_in_the_task(task, tmp_path):
    cfg = TRMConfig.from_dict({"data": {"task": task, **TASK_KEYS[task]}})
    own = [f.name for f in dataclasses.fields(task_class(task).Options)]
    assert set(cfg.data.options) == set(TASK_KEYS[task]) - {"seq_len"}  # the keys as written
    assert TRMConfig.from_dict(cfg.to_dict()) == cfg and hash(cfg) == hash(TRMConfig.from_dict(cfg.to_dict()))
    cfg.save(str(tmp_path / "c.yaml"))
    assert load_config(str(tmp_path / "c.yaml")) == cfg
    options = get_task(cfg).options  # parsed by the task: its Options, values coerced (lists -> tuples)
    assert type(options) is task_class(task).Options
    for key, value in TASK_KEYS[task].items():
        if key in own:
            assert getattr(options, key) == (tuple(value) if isinstance(value, list) else value)
    parsed = get_task(cfg).config  # every own key, parsed, written flat after the shared keys
    flat = parsed.to_dict()["data"]
    assert list(flat)[-len(own):] == own and "options" not in flat
    assert all(flat[k] == v for k, v in TASK_KEYS[task].items())
    assert get_task(parsed).options == options and TRMConfig.from_dict(parsed.to_dict()) == parsed
    others = {f.name for t in BUILTIN_TASKS if t != task for f in dataclasses.fields(task_class(t).Options)}
    assert not others & set(flat)


def test_data_replace_and_key_errors(caplog):
    data = TRMConfig().data
    oracle = data.replace(code_context="oracle", seq_len=32)
    assert oracle.seq_len == 32 and oracle.options == {"code_context": "oracle"}
    parsed = get_task(TRMConfig(data=oracle)).options
    assert (parsed.code_context, parsed.code_num_facts) == ("oracle", get_task(TRMConfig()).options.code_num_facts)
    assert dataclasses.replace(data, seq_len=16).options == data.options  # generic keys: dataclasses.replace
    maze = data.replace(task="maze", maze_size=5)
    assert maze.task == "maze" and get_task(TRMConfig(data=maze)).options == task_class("maze").Options(maze_size=5)
    assert oracle.replace(task="maze").options == {}  # another task starts from none of the old task's keys
    with pytest.raises(ConfigError, match=r"'data.maze_sise'.*Did you mean 'data.maze_size'"):
        get_task(TRMConfig(data=maze.replace(maze_sise=3)))
    with pytest.raises(ConfigError, match=r"'data.code_num_facts': must be in \[8, 1600\]"):
        get_task(TRMConfig(data=data.replace(code_num_facts=4)))
    with pytest.raises(ConfigError, match=r"'data.maze_size': expected an integer, got 'big'"):
        get_task(TRMConfig(data=maze.replace(maze_size="big")))
    with caplog.at_level(logging.WARNING, logger="trm_jax.tasks.base"):
        code = get_task(TRMConfig(data=data.replace(maze_size=3)))
    assert code.config.data.options == get_task(TRMConfig()).config.data.options  # dropped
    assert "'data.maze_size' have no effect with data.task 'code'" in caplog.text
    with pytest.raises(AttributeError, match="maze_size"):
        data.maze_size  # noqa: B018 - the config holds a task's keys as data: no attribute proxies them
    with pytest.raises(TypeError):
        maze.options["maze_size"] = 7  # read-only
    with pytest.raises(ConfigError, match=r"'data.options'.*keys every task shares"):
        TRMConfig(data=dataclasses.replace(data, options={"seq_len": 3}))


def _old_style_data(task: str, **changes) -> dict:
    """A data section as run configs saved it before tasks had their own keys: every task's keys."""
    old = {k: v for k, v in get_task(TRMConfig.from_dict({"data": {"task": task}})).config.to_dict()["data"].items()}
    for name in BUILTIN_TASKS:
        for f in dataclasses.fields(task_class(name).Options):
            old.setdefault(f.name, list(f.default) if isinstance(f.default, tuple) else f.default)
    old.update(changes)
    return old


def test_old_run_configs_with_every_tasks_keys_load(caplog):
    with caplog.at_level(logging.WARNING, logger="trm_jax.tasks.base"):
        maze = get_task(TRMConfig.from_dict({"data": _old_style_data("maze", seq_len=900)})).config
    assert maze.data.task == "maze" and not caplog.records  # other tasks' keys at their defaults: silent
    assert maze == get_task(TRMConfig.from_dict({"data": {"task": "maze", "seq_len": 900}})).config
    with caplog.at_level(logging.WARNING, logger="trm_jax.tasks.base"):
        changed = get_task(TRMConfig.from_dict({"data": _old_style_data("maze", seq_len=900, arc_num_aug=5,
                                                                            num_aug=2)})).config
    assert changed == maze
    (record,) = caplog.records  # one warning naming both keys
    assert "'data.num_aug', 'data.arc_num_aug' have no effect with data.task 'maze'" in record.getMessage()
    with pytest.raises(ConfigError, match=r"unknown config key 'data.no_task_has_this'"):
        get_task(TRMConfig.from_dict({"data": {"no_task_has_this": 1}}))


def test_load_reads_a_run_dir_saved_with_every_tasks_keys(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["data"] = _old_style_data(cfg["data"].pop("task"), **cfg["data"])
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert "maze_size" in (old / "config.yaml").read_text()
    p, q = trm_jax.load(old), trm_jax.load(run_dir)
    assert get_task(p.config).config == get_task(q.config).config
    queries = [s["query"] for s in get_task(q.config).samples("eval")[:3]]
    assert trm_jax.infer(p, queries) == trm_jax.infer(q, queries)


@pytest.mark.parametrize("task, seq_len", [("sudoku", 81), ("maze", 900), ("arc", 900)])
def test_rag_is_an_error_for_tasks_without_retrieval(task, seq_len):
    with pytest.raises(ConfigError, match=rf"'rag.enabled': data.task '{task}' does not use retrieved context"):
        get_task(TRMConfig.from_dict({"data": {"task": task, "seq_len": seq_len}, "rag": {"enabled": True}}))
    for text_task in ("code", "jsonl"):  # the text tasks retrieve
        assert task_class(text_task).uses_retrieval


def test_a_bad_task_key_stops_train_py_at_start(tmp_path, capsys):
    """config cannot know a task's keys: scripts/train.py builds the task first (training.as_config), so a bad
    one is one ConfigError before any run directory or training."""
    config = tmp_path / "maze.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"),
                                      "data": {"task": "maze", "seq_len": 81, "maze_size": 2}}))
    train = runpy.run_path(os.path.join(ROOT, "scripts", "train.py"), run_name="train_script")["main"]
    assert train(["--config", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: config key 'data.maze_size': must be >= 3, got 2"
    assert not (tmp_path / "run").exists()
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "data": {"task": "maze", "maze_sise": 9}}))
    assert train(["--config", str(config), "--quiet"]) == 2
    assert "unknown config key 'data.maze_sise' for data.task 'maze'. Did you mean 'data.maze_size'?" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()
