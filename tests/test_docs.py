"""README matches the code: its config reference is exactly the config's keys with their defaults, and
every `python scripts/...` command it shows parses with that script's own argument parser (train
commands: their --config file and --set overrides load as a valid config)."""

import argparse
import dataclasses
import os
import re
import runpy
import shlex

import pytest

from trm_jax import config as C

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
CONFIG_REFERENCE = runpy.run_path(os.path.join(ROOT, "scripts", "config_reference.py"), run_name="config_reference")


def _keys(cls, prefix):
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _keys(type(default), f.name)
        elif f.name == "stages":
            yield from _keys(C.CurriculumStage, "curriculum.stages[]")
        else:
            yield f"{prefix}.{f.name}" if prefix else f.name


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else len(README)]


def _reference_rows() -> dict:
    """{key: default as shown} of the README's config reference tables."""
    rows = re.findall(r"^\| `([^`]+)` \| `(.*?)` \|", _section("Config reference"), re.M)
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)), f"keys listed twice: {sorted({k for k in keys if keys.count(k) > 1})}"
    return dict(rows)


def _shown_default(cls, name):
    """A field's default as scripts/config_reference.py prints it."""
    default = CONFIG_REFERENCE["default_of"](next(f for f in dataclasses.fields(cls) if f.name == name))
    return "null" if default is None else repr(default) if isinstance(default, str) else str(default)


def test_readme_documents_every_config_key():
    rows = _reference_rows()
    keys = set(_keys(C.TRMConfig, ""))
    missing = [k for k in _keys(C.TRMConfig, "") if f"`{k}`" not in README]
    assert not missing, f"regenerate the README config reference (scripts/config_reference.py): {missing}"
    # exactly the config's keys: none missing from the tables, none that the config does not have
    assert set(rows) == keys, ("regenerate the README config reference (scripts/config_reference.py): "
                               f"missing {sorted(keys - set(rows))}, not in the config {sorted(set(rows) - keys)}")
    sections = dict(CONFIG_REFERENCE["SECTIONS"])
    wrong = {}
    for key, shown in rows.items():
        prefix, _, name = key.rpartition(".")
        expected = _shown_default(sections[prefix], name)
        if shown != expected:
            wrong[key] = (shown, expected)
    assert not wrong, f"README defaults differ from trm_jax/config.py (README, code): {wrong}"


def _readme_commands() -> list[str]:
    """Every `python scripts/<name>.py ...` command of the README: code-block lines (continuations
    joined, comments dropped, pipes and `&&` chains split) and inline code spans."""
    lines, in_block, current = [], False, ""
    for line in README.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            current += line.rstrip()
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            lines.append(current)
            current = ""
    lines += re.findall(r"`(python scripts/[^`]+)`", README)
    commands = []
    for line in lines:
        for part in re.split(r"\|\||&&|\|", line):
            part = part.strip()
            if part.startswith("python scripts/"):
                commands.append(shlex.split(part, comments=True))
    return commands


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def _parse_with_script(script: str, argv: list[str], monkeypatch) -> argparse.Namespace:
    """`argv` parsed by the script's own parser: its `main(argv)` runs up to `parse_args` and stops."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    environ = dict(os.environ)  # a script may set defaults in os.environ when imported
    try:
        module = runpy.run_path(os.path.join(ROOT, script), run_name="readme_check")
        with monkeypatch.context() as m:
            m.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
            with pytest.raises(_Parsed) as parsed:
                module["main"](argv)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return parsed.value.namespace


def test_readme_commands_parse_and_their_configs_load(monkeypatch, capsys):
    commands = _readme_commands()
    scripts = {argv[1] for argv in commands}
    assert {"scripts/train.py", "scripts/infer.py", "scripts/evaluate.py", "scripts/benchmark.py"} <= scripts
    for argv in commands:
        script, args = argv[1], argv[2:]
        assert os.path.isfile(os.path.join(ROOT, script)), f"README command {' '.join(argv)}: no {script}"
        if "ArgumentParser" not in open(os.path.join(ROOT, script)).read():
            assert not args, f"README command {' '.join(argv)}: {script} takes no arguments"
            continue
        try:
            ns = _parse_with_script(script, args, monkeypatch)
        except SystemExit as e:  # argparse rejected the command line
            raise AssertionError(f"README command does not parse: {' '.join(argv)}\n{capsys.readouterr().err}") from e
        if getattr(ns, "config", None) is not None and hasattr(ns, "overrides"):  # train, rag_experiment
            path = os.path.join(ROOT, ns.config)
            assert os.path.isfile(path), f"README command {' '.join(argv)}: no config file {ns.config}"
            # data the README has the user download first (--set data.train_path=...) counts as present;
            # everything else is checked: unknown --set keys or bad values raise ConfigError
            given = {value for key, _, value in (o.partition("=") for o in ns.overrides)
                     if key.endswith(("_path", "_dir"))}
            with monkeypatch.context() as m:
                for name in ("exists", "isfile", "isdir"):
                    real = getattr(os.path, name)
                    m.setattr(os.path, name, lambda p, real=real: p in given or real(p))
                C.load_config(path, ns.overrides)


def test_readme_gives_the_two_commands():
    assert "python scripts/train.py --config config.yaml" in README
    assert "python -m pytest" in README and "pip install torch==2.13.0" in README
