"""Write the config reference page (every key, its default, its meaning) from trm_jax/config/schema.py.

    python scripts/config_reference.py            # rewrite docs/config-reference.md
    python scripts/config_reference.py --check    # exit 1 when the page is out of date
    python scripts/config_reference.py --stdout   # print the page

A key's meaning is its field's comment in trm_jax/config/schema.py (the comment lines above the field and
its trailing comment), so the page changes only through the code. The tables follow the config tree:
one per section (a dataclass-valued field, or a tuple of dataclasses such as `curriculum.stages`),
found by walking `TRMConfig`, so a new section needs no change here. The `data` keys of one task (its
`Options` dataclass, written flat in YAML as `data.<key>`) get a table per built-in task, so a new
task's keys appear once it is in the registry.
"""

import argparse
import dataclasses
import inspect
import os
import re
import sys
import typing
from typing import NamedTuple

from trm_jax import config as C
from trm_jax.tasks import BUILTIN_TASKS, task_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "config-reference.md")

INTRO = """\
Every key, its default and its meaning. Override any key on the command line with
`--set key.path=value` (YAML value syntax), or from Python with
`trm_jax.load_config(path, ["key.path=value"])`. Unknown keys and bad values are a `ConfigError`
naming the key path. After the keys every task shares, each task's own `data` keys have a table:
they apply when `data.task` names that task (a key of another task has no effect, with a warning).
The task checks its own keys when it is built (`trm_jax.tasks.get_task(config)`; `scripts/train.py`
does so before anything else).

This page is generated from `trm_jax/config/schema.py` and each task's `Options` by
`python scripts/config_reference.py`: edit the field comments there, then rerun the script
(`tests/test_docs.py` fails while the page is out of date).
"""


class Section(NamedTuple):
    """One table: the keys `prefix.<field>` of the dataclass `cls`, under the heading `title`."""
    title: str
    prefix: str
    cls: type


def _dataclass_in(hint):
    """The dataclass a field holds (directly, optionally, or as a tuple of them), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _is_tuple(hint) -> bool:
    return typing.get_origin(hint) is tuple


def _walk(cls, prefix: str):
    yield Section(f"`{prefix}`" if prefix else "Top level", prefix, cls)
    if cls is C.DataConfig:  # then the task tables: data.<key> of each task's Options
        for name in BUILTIN_TASKS:
            yield Section(f"`data` of the `{name}` task", "data", task_class(name).Options)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = _dataclass_in(hints[f.name])
        if inner is not None:
            path = f"{prefix}.{f.name}" if prefix else f.name
            yield from _walk(inner, path + "[]" if _is_tuple(hints[f.name]) else path)


def sections() -> list:
    """The tables in page order: the config tree, depth first; the task tables after `data`."""
    return list(_walk(C.TRMConfig, ""))


def is_key(cls, field: dataclasses.Field) -> bool:
    """Whether a field is a key of its own row: not a section, and not the field that holds a section's
    undeclared keys (`data.options`: the task tables list each task's, which YAML writes flat)."""
    if field.name == getattr(cls, "EXTRA_KEYS", None):
        return False
    return _dataclass_in(typing.get_type_hints(cls)[field.name]) is None


def field_comments(cls) -> dict:
    """{field name: its comment} from the class source: comment lines above a field, then its trailing comment."""
    out, pending = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        m = re.match(r"\s+(\w+):[^=#]*(?:=[^#]*)?(?:#\s*(.*))?$", line)
        if m and not stripped.startswith(("def ", "return", "@")):
            out[m.group(1)] = " ".join(pending + ([m.group(2)] if m.group(2) else []))
        pending = []
    return out


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ""


def shown_default(f: dataclasses.Field) -> str:
    """A field's default as the page shows it (YAML's null for None, quotes around strings)."""
    default = default_of(f)
    return "null" if default is None else repr(default) if isinstance(default, str) else str(default)


def table(section: Section) -> list:
    comments = field_comments(section.cls)
    rows = []
    for f in dataclasses.fields(section.cls):
        if not is_key(section.cls, f):
            continue
        key = f"{section.prefix}.{f.name}" if section.prefix else f.name
        meaning = comments.get(f.name, "").replace("|", "\\|")  # a bare | would end the table cell
        rows.append(f"| `{key}` | `{shown_default(f)}` | {meaning} |")
    return rows


def page() -> str:
    out = ["# Config reference", "", INTRO]
    for section in sections():
        rows = table(section)
        if rows:
            out += [f"## {section.title}", "", "| key | default | meaning |", "|---|---|---|", *rows, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write docs/config-reference.md from trm_jax/config/schema.py.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the page differs from the config")
    mode.add_argument("--stdout", action="store_true", help="print the page instead of writing it")
    args = ap.parse_args(argv)
    text = page()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = open(PAGE, encoding="utf-8").read() if os.path.exists(PAGE) else ""
        if current != text:
            print(f"{PAGE} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    with open(PAGE, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    from launcher import launch

    launch(main)
