"""README stays complete: the two commands, and every config key in the reference."""

import dataclasses
import os

from trm_jax import config as C

README = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()


def _keys(cls, prefix):
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _keys(type(default), f.name)
        elif f.name == "stages":
            yield from _keys(C.CurriculumStage, "curriculum.stages[]")
        else:
            yield f"{prefix}.{f.name}" if prefix else f.name


def test_readme_documents_every_config_key():
    missing = [k for k in _keys(C.TRMConfig, "") if f"`{k}`" not in README]
    assert not missing, f"regenerate the README config reference (scripts/config_reference.py): {missing}"


def test_readme_gives_the_two_commands():
    assert "python scripts/train.py --config config.yaml" in README
    assert "python -m pytest" in README and "pip install torch==2.13.0" in README
