"""Print the config reference (every key, its default, its meaning) as Markdown tables.

The meaning is the field's trailing comment in trm_jax/config.py, so the README table is regenerated
with `python scripts/config_reference.py` whenever the config changes.
"""

import dataclasses
import inspect
import re

from trm_jax import config as C

SECTIONS = [("", C.TRMConfig), ("model", C.ModelConfig), ("data", C.DataConfig), ("training", C.TrainingConfig),
            ("curriculum.stages[]", C.CurriculumStage), ("rag", C.RAGConfig), ("monitoring", C.MonitoringConfig),
            ("distributed", C.DistributedConfig)]


def field_comments(cls) -> dict:
    out, pending = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        m = re.match(r"\s+(\w+):[^=#]*(?:=[^#]*)?(?:#\s*(.*))?$", line)
        if m and not stripped.startswith(("def ", "return", "@")):
            text = " ".join(pending + ([m.group(2)] if m.group(2) else []))
            out[m.group(1)] = text
        pending = []
    return out


def default_of(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "(section)" if dataclasses.is_dataclass(value) else value
    return ""


def main():
    for prefix, cls in SECTIONS:
        comments = field_comments(cls)
        rows = [(f.name, default_of(f), comments.get(f.name, "")) for f in dataclasses.fields(cls)
                if not dataclasses.is_dataclass(default_of(f)) and default_of(f) != "(section)"]
        if not rows:
            continue
        print(f"\n**{prefix or 'top level'}**\n")
        print("| key | default | meaning |\n|---|---|---|")
        for name, default, text in rows:
            key = f"{prefix}.{name}" if prefix else name
            shown = "null" if default is None else repr(default) if isinstance(default, str) else default
            print(f"| `{key}` | `{shown}` | {text} |")


if __name__ == "__main__":
    main()
