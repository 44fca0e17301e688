"""Griffe extension for the API reference: every public name documented at `trm_jax.<name>`, as Python sees it.

Griffe reads the package statically, which misses what Python does at run time:
- the names `trm_jax/__init__.py` resolves on first use (its `_LAZY` table and module `__getattr__`):
  griffe sees no such member, so `::: trm_jax.load` would not be found; each becomes an alias of
  `<module>.<name>`, the object `__getattr__` returns;
- `from trm_jax.models.predict import predict` in a package rebinds the name `predict` from the submodule
  to the function; griffe keeps the submodule, so the alias is moved to the member of the same name;
- `create_model = make_model_from_config` makes a second name for a function; griffe sees an attribute
  without a docstring, so the alias is moved to the function assigned;
- a Flax module (`nn.Module` subclass) is a dataclass made by Flax's metaclass, not by `@dataclass`, so
  griffe gives it no constructor; it gets the `__init__` of its annotated fields (in order, with their
  defaults; Flax's own `parent` and `name` are left out).
mkdocs.yml loads this file (mkdocstrings' python handler, `extensions`); it is not a page of the site.
"""

import ast

import griffe

PACKAGE = "trm_jax"
FLAX_MODULE = {"flax.linen.Module", "flax.linen.module.Module"}


def _resolve(pkg: griffe.Module, name: str, target: str) -> str:
    """Where the public `name`, an alias of `target`, really leads at run time."""
    for _ in range(8):  # a chain of renames, never a cycle in practice
        obj = pkg.modules_collection[target]
        if obj.is_module and name in obj.members:
            target = f"{target}.{name}"
        elif obj.is_attribute and isinstance(obj.value, griffe.ExprName):
            target = obj.value.canonical_path
        else:
            break
    return target


def _flax_fields(cls: griffe.Class) -> list:
    """The constructor parameters of a Flax module: its annotated fields and those of the Flax modules
    it extends, base classes first (a redefined field keeps its first position, as in dataclasses)."""
    fields = {}
    for klass in [*reversed(cls.mro()), cls]:
        if not _is_flax_module(klass):
            continue
        for member in klass.members.values():
            if member.is_alias or not member.is_attribute or member.annotation is None or "property" in member.labels:
                continue
            fields[member.name] = griffe.Parameter(member.name, annotation=member.annotation, default=member.value,
                                                   kind=griffe.ParameterKind.positional_or_keyword)
    return list(fields.values())


def _is_flax_module(cls: griffe.Class) -> bool:
    return any(str(getattr(base, "canonical_path", base)) in FLAX_MODULE for base in cls.bases) or any(
        _is_flax_module(parent) for parent in _safe_mro(cls))


def _safe_mro(cls: griffe.Class) -> list:
    try:
        return cls.mro()
    except (ValueError, griffe.AliasResolutionError):
        return []


def _classes(mod: griffe.Module):
    for member in mod.members.values():
        if member.is_alias:
            continue
        if member.is_module:
            yield from _classes(member)
        elif member.is_class:
            yield member


class LazyExports(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        if pkg.path != PACKAGE:
            return
        if "_LAZY" in pkg.members:
            try:
                lazy = ast.literal_eval(str(pkg.members["_LAZY"].value))  # {name: module}
            except (ValueError, SyntaxError) as e:
                raise ValueError("docs/griffe_lazy_exports.py reads trm_jax._LAZY statically: keep it a literal "
                                 "dict {name: module}") from e
            for name, module in lazy.items():
                pkg.set_member(name, griffe.Alias(name, f"{module}.{name}", parent=pkg))
        for name, member in list(pkg.members.items()):
            if not member.is_alias:
                continue
            try:
                target = _resolve(pkg, name, member.target_path)
            except (KeyError, griffe.AliasResolutionError):
                continue  # an external name: left as griffe found it
            if target != member.target_path:
                pkg.set_member(name, griffe.Alias(name, target, parent=pkg))
        for cls in _classes(pkg):
            if "__init__" not in cls.members and _is_flax_module(cls):
                fields = _flax_fields(cls)
                self_param = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
                # its source: the class statement down to the last field of its own
                own = [m.endlineno for m in cls.members.values() if m.name in {f.name for f in fields}]
                cls.set_member("__init__", griffe.Function(
                    "__init__", lineno=cls.lineno, endlineno=max(own, default=cls.lineno), parent=cls,
                    returns="None", parameters=griffe.Parameters(self_param, *fields)))
