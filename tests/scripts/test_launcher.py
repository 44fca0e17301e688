"""scripts/launcher.py: the malloc setting the scripts re-execute themselves with, and the exit status
`launch` gives a script's `main`."""

import os
import subprocess
import sys
import textwrap

import pytest

from scripts import launcher as hp
from trm_jax.errors import TRMError

SCRIPTS = os.path.dirname(hp.__file__)

GLIBC = (2, 36)


def test_env_adds_the_tunable_and_keeps_others():
    assert hp.huge_pages_env({"A": "1"}, GLIBC, "madvise")["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = hp.huge_pages_env({"GLIBC_TUNABLES": "glibc.malloc.check=0"}, GLIBC, "always")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.check=0:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize("environ, glibc, mode", [
    ({"TRM_JAX_HUGE_PAGES": "0"}, GLIBC, "madvise"),  # opted out
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # the user decided
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, GLIBC, "madvise"),  # already on: no second exec
    ({}, (2, 34), "madvise"),  # glibc without the tunable
    ({}, None, "madvise"),  # not glibc
    ({}, GLIBC, "never"),  # the kernel gives none
    ({}, GLIBC, None),  # no transparent huge pages at all
])
def test_env_is_none_where_nothing_should_change(environ, glibc, mode):
    assert hp.huge_pages_env(environ, glibc, mode) is None


def test_with_huge_pages_sets_either_way():
    env = hp.with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1:glibc.malloc.check=0", "X": "y"}, on=False)
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.check=0:glibc.malloc.hugetlb=0", "X": "y"}
    assert hp.with_huge_pages({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert hp.thp_mode(str(path)) == "madvise"
    assert hp.thp_mode(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("orig, argv, expected", [
    (["python", "scripts/train.py", "--config", "c.yaml"], ["scripts/train.py", "--config", "c.yaml"], True),
    (["python", "-X", "dev", "s.py"], ["s.py"], True),
    (["python", "-m", "benchmarks.loop", "--steps", "3"], ["/r/benchmarks/loop.py", "--steps", "3"], True),
    (["python", "-m", "pkg"], ["/r/pkg/__main__.py"], True),
    # a script run in-process by another program (runpy under pytest): re-executing would restart pytest
    (["python", "-m", "pytest", "tests/x.py", "-k", "smoke"], ["benchmark.py", "--json", "o.json", "rag"], False),
    (["python", "-m", "pytest", "tests/x.py"], ["benchmark.py"], False),
    (["python", "-c", "pass"], ["-c"], False),
])
def test_started_as_recognises_a_script_launch(orig, argv, expected):
    assert hp.started_as(orig, argv) is expected


PROBE = textwrap.dedent("""
    import ctypes, os, sys
    print("start", os.getpid(), os.environ.get("GLIBC_TUNABLES"), flush=True)
    from launcher import huge_pages_enabled, rerun_with_huge_pages
    rerun_with_huge_pages()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    with open("/proc/self/smaps_rollup") as f:
        huge = [int(line.split()[1]) for line in f if line.startswith("AnonHugePages")][0]
    print("after", os.getpid(), os.environ.get("GLIBC_TUNABLES"), huge_pages_enabled(), huge, sys.argv[1:])
""")


def _probe(tmp_path, env_extra):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", hp.OPT_OUT)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SCRIPTS, env.get("PYTHONPATH")]))  # as for a script there
    out = subprocess.run([sys.executable, str(script), "a", "b c"], env={**env, **env_extra}, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    return [line.split(" ", 3) for line in out]


applicable = pytest.mark.skipif(hp.huge_pages_env({}, hp.glibc_version(), hp.thp_mode()) is None,
                                reason="needs Linux, glibc >= 2.35 and transparent huge pages")


@applicable
def test_rerun_execs_once_in_the_same_process_with_the_same_arguments(tmp_path):
    lines = _probe(tmp_path, {})
    assert [line[0] for line in lines] == ["start", "start", "after"]  # re-executed exactly once
    assert lines[0][1] == lines[1][1] == lines[2][1]  # same PID
    assert lines[0][2] == "None" and lines[1][2] == lines[2][2] == "glibc.malloc.hugetlb=1"
    after = lines[2][3].split(" ", 2)
    assert after[0] == "True" and after[2] == "['a', 'b c']"
    assert int(after[1]) > 0  # a 64 MiB malloc block is backed by huge pages


@applicable
def test_opt_out_leaves_the_process_alone(tmp_path):
    lines = _probe(tmp_path, {hp.OPT_OUT: "0"})
    assert [line[0] for line in lines] == ["start", "after"]
    after = lines[1][3].split(" ", 2)
    assert lines[1][2] == "None" and after[0] == "False"
    if hp.thp_mode() == "madvise":  # huge pages only where asked for
        assert int(after[1]) == 0


@pytest.fixture()
def no_rerun(monkeypatch):
    """Opted out: `python -m pytest` was started as a script (pytest's __main__) and would be re-executed."""
    monkeypatch.setenv(hp.OPT_OUT, "0")


@pytest.mark.parametrize("returns, status", [(None, 0), (3, 3), ({"results": 1}, 0)])
def test_launch_exits_with_mains_status(no_rerun, returns, status):
    with pytest.raises(SystemExit) as done:
        hp.launch(lambda: returns)
    assert done.value.code == status


def test_launch_turns_a_user_error_into_a_message_and_status_2(no_rerun, capsys):
    def main():
        raise TRMError("no such run directory")

    with pytest.raises(SystemExit) as done:
        hp.launch(main)
    assert done.value.code == 2 and capsys.readouterr().err == "error: no such run directory\n"
