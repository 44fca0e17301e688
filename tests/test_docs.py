"""The documentation matches the code: README.md and the docs/ pages build as a site with no broken link,
the config reference page is exactly the config's keys with their defaults, the API reference documents
every public name (with a docstring, under the anchor `trm_jax.<name>`), and every
`python scripts/...` command shown parses with that script's own argument parser (train commands: their
--config file and --set overrides load as a valid config)."""

import argparse
import dataclasses
import glob
import inspect
import json
import os
import re
import runpy
import shlex
import subprocess
import sys

import pytest
import yaml

import trm_jax
from trm_jax import config as C
from trm_jax.tasks import BUILTIN_TASKS, get_task, task_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
README_LINES_MAX = 300


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


README = _read(os.path.join(ROOT, "README.md"))
# every page a reader sees: {path relative to the repository: text}
PAGES = {"README.md": README, **{os.path.relpath(p, ROOT): _read(p) for p in sorted(glob.glob(os.path.join(DOCS, "*.md")))}}
REFERENCE_PAGE = os.path.join("docs", "config-reference.md")
CONFIG_REFERENCE = runpy.run_path(os.path.join(ROOT, "scripts", "config_reference.py"), run_name="config_reference")
API_REFERENCE = runpy.run_path(os.path.join(ROOT, "scripts", "api_reference.py"), run_name="api_reference")


def _config_defaults(cls, prefix=""):
    """{key path: default} of every leaf key of the config tree, walked from the dataclasses' defaults."""
    out = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out.update(_config_defaults(type(default), path))
        elif f.name == "stages":  # a list of stages: its keys are those of one stage
            out.update(_config_defaults(C.CurriculumStage, path + "[]"))
        elif cls is C.DataConfig and f.name == "options":  # each task's own keys, flat in YAML: data.<key>
            for name in BUILTIN_TASKS:
                own = _config_defaults(task_class(name).Options, prefix)
                assert not set(own) & set(out), f"task {name!r} reuses the data keys {sorted(set(own) & set(out))}"
                out.update(own)
        else:
            out[path] = default
    return out


def _shown(default) -> str:
    """A default as the reference shows it: YAML's null for None, strings quoted."""
    return "null" if default is None else repr(default) if isinstance(default, str) else str(default)


def _reference_rows() -> dict:
    """{key: default as shown} of the config reference page's tables."""
    rows = re.findall(r"^\| `([^`]+)` \| `(.*?)` \|", PAGES[REFERENCE_PAGE], re.M)
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)), f"keys listed twice: {sorted({k for k in keys if keys.count(k) > 1})}"
    return dict(rows)


def test_config_reference_lists_every_key_with_its_default():
    rows = _reference_rows()
    defaults = _config_defaults(C.TRMConfig)
    fix = "regenerate docs/config-reference.md with python scripts/config_reference.py"
    # exactly the config's keys: none missing from the tables, none that the config does not have
    assert set(rows) == set(defaults), (f"{fix}: missing {sorted(set(defaults) - set(rows))}, "
                                        f"not in the config {sorted(set(rows) - set(defaults))}")
    wrong = {key: (shown, _shown(defaults[key])) for key, shown in rows.items() if shown != _shown(defaults[key])}
    assert not wrong, f"{fix}: defaults differ from trm_jax/config/schema.py (page, code): {wrong}"


def test_config_reference_page_is_the_generated_one():
    assert PAGES[REFERENCE_PAGE] == CONFIG_REFERENCE["page"](), (
        "docs/config-reference.md differs from what trm_jax/config/schema.py gives (a field or its comment changed): "
        "run python scripts/config_reference.py")


def _commands(text: str) -> list[list[str]]:
    """Every `python scripts/<name>.py ...` command of a page: code-block lines (continuations joined,
    comments dropped, pipes and `&&` chains split) and inline code spans."""
    lines, in_block, current = [], False, ""
    for line in text.splitlines():
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
    lines += re.findall(r"`(python scripts/[^`]+)`", text)
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
        module = runpy.run_path(os.path.join(ROOT, script), run_name="docs_check")
        with monkeypatch.context() as m:
            m.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
            with pytest.raises(_Parsed) as parsed:
                module["main"](argv)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return parsed.value.namespace


def test_doc_commands_parse_and_their_configs_load(monkeypatch, capsys):
    commands = [(page, argv) for page, text in PAGES.items() for argv in _commands(text)]
    scripts = {argv[1] for _, argv in commands}
    assert {"scripts/train.py", "scripts/infer.py", "scripts/evaluate.py", "scripts/benchmark.py",
            "scripts/import_checkpoint.py", "scripts/plot_metrics.py"} <= scripts
    assert any(page.startswith("docs") for page, _ in commands) and any(page == "README.md" for page, _ in commands)
    for page, argv in commands:
        script, args, shown = argv[1], argv[2:], f"{page}: {' '.join(argv)}"
        assert os.path.isfile(os.path.join(ROOT, script)), f"{shown}: no {script}"
        if "ArgumentParser" not in _read(os.path.join(ROOT, script)):
            assert not args, f"{shown}: {script} takes no arguments"
            continue
        try:
            ns = _parse_with_script(script, args, monkeypatch)
        except SystemExit as e:  # argparse rejected the command line
            raise AssertionError(f"command does not parse: {shown}\n{capsys.readouterr().err}") from e
        if getattr(ns, "config", None) is not None and hasattr(ns, "overrides"):  # train, rag_experiment
            path = os.path.join(ROOT, ns.config)
            assert os.path.isfile(path), f"{shown}: no config file {ns.config}"
            # data the docs have the user download first (--set data.train_path=...) counts as present;
            # everything else is checked: unknown --set keys or bad values raise ConfigError
            given = {value for key, _, value in (o.partition("=") for o in ns.overrides)
                     if key.endswith(("_path", "_dir"))}
            with monkeypatch.context() as m:
                for name in ("exists", "isfile", "isdir"):
                    real = getattr(os.path, name)
                    m.setattr(os.path, name, lambda p, real=real: p in given or real(p))
                get_task(C.load_config(path, ns.overrides))  # the task's own keys too


def test_readme_gives_the_two_commands_and_ci_installs_as_it_says():
    main_job = "python scripts/train.py --config config.yaml"
    setup = [line for line in README.splitlines() if line.startswith("python3 -m venv .venv && ")]
    assert [line.rsplit(" && ", 1)[1] for line in setup] == [main_job, "python -m pytest -n 2"], setup
    assert setup[0].rsplit(" && ", 1)[0] == setup[1].rsplit(" && ", 1)[0], "the two commands set up differently"
    # .ci/run installs exactly what the README's setup installs, in the same order
    installs = [part.strip()[len("pip install "):] for part in setup[1].split(" && ") if part.strip().startswith("pip install ")]
    assert installs == ["torch==2.13.0", '-e ".[torch,rag,test]"'], installs
    ci = re.findall(r"^python -m pip install -q (?!--upgrade)(.+)$", _read(os.path.join(ROOT, ".ci", "run")), re.M)
    assert ci == installs, f".ci/run installs {ci}, README says {installs}"


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def _built_page(site, page: str) -> str:
    """The HTML file mkdocs writes for the docs page `page` (a path under docs/)."""
    stem = page[:-len(".md")]
    return os.path.join(site, os.path.dirname(stem) if os.path.basename(stem) == "index" else stem, "index.html")


def _build_site(out) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site as `mkdocs build --strict` writes it: any warning fails the build (a broken link or
    anchor, a page not in the nav, a nav entry without a page, a docstring that documents a parameter the
    signature does not have). Built once per test run (it takes seconds): under pytest-xdist the workers
    share one build, made by the first that needs it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        out = tmp_path_factory.mktemp("site")
        _build_site(out)
        return out
    from filelock import FileLock  # a dependency of huggingface_hub

    shared = tmp_path_factory.getbasetemp().parent  # this run's directory, above each worker's own
    out, built = shared / "site", shared / "site.built"
    with FileLock(str(shared / "site.lock")):
        if not built.exists():
            _build_site(out)
            built.touch()
    return out


def test_site_builds_strict_with_every_page_in_the_nav(site):
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as fh:
        settings = yaml.safe_load(fh)
    nav = _nav_pages(settings["nav"])
    files = sorted(os.path.relpath(p, DOCS) for p in glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
    assert sorted(nav) == files and len(nav) == len(set(nav)), f"nav {sorted(nav)} != docs/ pages {files}"
    # the strictness the fixture relies on: omitted pages and unknown anchors are warnings, not info
    assert {settings["validation"][k] for k in ("omitted_files", "unrecognized_links", "anchors")} == {"warn"}
    for page in files:
        assert os.path.isfile(_built_page(site, page)), f"{page} was not built ({_built_page(site, page)})"


def test_api_reference_places_every_public_name_and_is_up_to_date():
    """Each name of trm_jax.__all__ is on exactly one page of docs/api/, and those pages are the generated
    ones: a name added to trm_jax.__all__ fails here until scripts/api_reference.py places it."""
    placed = API_REFERENCE["placement"]()  # a TRMError naming what is unplaced, placed twice or not public
    assert set(placed) == set(trm_jax.__all__)
    stale = API_REFERENCE["stale"]()
    assert not stale, f"{stale} differ from what trm_jax.__all__ gives: run python scripts/api_reference.py"
    for name, slug in placed.items():
        assert f"::: trm_jax.{name}\n" in _read(os.path.join(DOCS, "api", f"{slug}.md")), name


def test_the_test_extra_installs_what_the_docs_build_needs():
    """CI installs the `test` extra only, and the suite builds the site: everything of `docs` is in `test`."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    assert {"mkdocs-material", "mkdocstrings[python]"} <= {re.split(r"[<>=!~ ]", r)[0] for r in extras["docs"]}
    assert not set(extras["docs"]) - set(extras["test"]), f"add to the test extra: {set(extras['docs']) - set(extras['test'])}"


def test_every_public_name_has_a_docstring():
    missing = []
    for name in trm_jax.__all__:
        obj = getattr(trm_jax, name)  # resolves the lazily exported names too
        doc = (obj.__doc__ or "").strip()  # a class's own docstring: __doc__ is not inherited
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            doc = ""  # the signature dataclasses writes when the class has no docstring
        if not doc:
            missing.append(name)
    assert not missing, f"public names without a docstring (the API reference shows it): {missing}"


def _sections(doc) -> set:
    """The Google-style section titles of a docstring: the lines `Title:` at its base indentation."""
    return set(re.findall(r"^([A-Z][A-Za-z ]*):$", inspect.cleandoc(doc or ""), re.M))


def test_public_names_taking_arguments_document_them_in_google_style():
    """mkdocs.yml parses the docstrings as Google style, so a public function or class that takes
    arguments documents them in an `Args:` section (the API reference's parameter table). A dataclass
    may document its fields as `Attributes:` instead (what the library returns, e.g. TrainResult); a
    config section whose every field is a key of the config reference page (checked complete above)
    may point there."""
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as fh:
        plugins = yaml.safe_load(fh)["plugins"]
    handler = next(p["mkdocstrings"] for p in plugins if isinstance(p, dict) and "mkdocstrings" in p)
    assert handler["handlers"]["python"]["options"]["docstring_style"] == "google"
    rows = _reference_rows()
    sections = {type(f.default_factory()): f.name for f in dataclasses.fields(C.TRMConfig)
                if f.default_factory is not dataclasses.MISSING}  # {section class: its key}
    undocumented = []
    for name in trm_jax.__all__:
        obj = getattr(trm_jax, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            continue  # raised, not called
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):  # a wrapper without a signature of its own (e.g. jax.jit's)
            signature = inspect.signature(obj.__wrapped__)
        params = [p for p in signature.parameters if p != "self"]
        if not params:
            continue
        titles = _sections(obj.__doc__)
        if isinstance(obj, type) and "__init__" in vars(obj):
            titles |= _sections(vars(obj)["__init__"].__doc__)
        if "Args" in titles or (dataclasses.is_dataclass(obj) and "Attributes" in titles):
            continue
        if obj in sections and all(f"{sections[obj]}.{p}" in rows for p in params):
            continue
        undocumented.append(f"{name}{signature}")
    assert not undocumented, f"public names taking arguments without an Args: section: {undocumented}"


def test_site_has_an_anchor_for_every_public_name(site):
    """mkdocstrings' identifiers: `trm_jax.<name>` on the name's API page, the lazily resolved names too
    (docs/griffe_lazy_exports.py)."""
    missing = []
    for name, slug in API_REFERENCE["placement"]().items():
        html = _read(_built_page(site, f"api/{slug}.md"))
        if f'id="trm_jax.{name}"' not in html:
            missing.append(f"{name} (api/{slug}.md)")
    assert not missing, f"no anchor id=\"trm_jax.<name>\" in the built API pages: {missing}"


def test_readme_is_short_and_its_links_reach_built_pages(site):
    lines = README.count("\n") + 1
    assert lines <= README_LINES_MAX, f"README.md has {lines} lines: move detail into docs/ (at most {README_LINES_MAX})"
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert sum(link.startswith("docs/") for link in local) >= 10, f"README links few docs pages: {local}"
    for link in local:
        path, _, anchor = link.partition("#")
        assert path, f"README link {link}: an anchor into README itself; link the docs page instead"
        assert os.path.exists(os.path.join(ROOT, path)), f"README link {link}: no file {path}"
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), f"README link {link}: anchors only into docs pages"
            html = _read(_built_page(site, path[len("docs/"):]))
            assert f'id="{anchor}"' in html, f"README link {link}: {path} has no heading with anchor #{anchor}"


def test_the_pages_show_pictures_drawn_from_measured_results():
    """Metric plots, a trace of the recursion and accuracy against depth and against trajectories appear in
    the pages, and every picture a page shows was drawn by scripts/docs_figures.py (docs/images/figures.json
    lists each file it drew, with the numbers behind it)."""
    text = "".join(open(p, encoding="utf-8").read() for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    shown = set(re.findall(r"!\[[^\]]*\]\((images/[^)\s]+)\)", text))
    for image in shown:
        assert os.path.isfile(os.path.join(ROOT, "docs", image)), image
    for kind in ("_metrics.png", "_trace.png", "_accuracy_vs_depth.png", "_accuracy_vs_trajectories.png"):
        assert any(image.endswith(kind) for image in shown), f"no {kind} picture in the docs"
    figures = json.load(open(os.path.join(ROOT, "docs", "images", "figures.json")))
    drawn = set()
    for record in figures.values():
        drawn.add(record.get("file"))
        for part in ("trace", "depth", "trajectories"):
            drawn.update(record.get(part, {}).get("files", [record.get(part, {}).get("file")]))
    drawn = {os.path.basename(f) for f in drawn if f}
    assert {os.path.basename(image) for image in shown} <= drawn
    depth = figures["sudoku"]["depth"]
    assert len(depth["depths"]) == len(depth["exact_accuracy"]["head"]) == len(depth["exact_accuracy"]["settled"])
