"""What every script and benchmark main does first: re-execute itself with malloc on huge pages, then run.

    if __name__ == "__main__":
        from launcher import launch   # a script: its own folder, scripts/, is first on sys.path
        launch(main)
    # a benchmark main (python -m benchmarks.NAME, from the repository root): from scripts.launcher import launch

`launch(main)` re-executes the process with the huge-pages setting below, runs `main()` and exits with
its status (a `TRMError` prints `error: ...` and exits 2). The package itself never re-executes a process.

Huge pages: XLA:CPU allocates every step's temporaries with the C library's malloc. With glibc, memory
freed at the end of a step goes back to the kernel and the next step faults it in again, 4 KiB page by
page, each page zeroed on first touch; at small widths those faults are a large share of the step. With
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc >= 2.35) malloc asks for transparent huge pages (2 MiB)
on all its memory: far fewer faults and TLB misses (docs/performance.md, "Huge pages"). PyTorch's CPU
allocator uses the same malloc, so the benchmarks run both frameworks' workers under the same setting
(`with_huge_pages`).

glibc reads its tunables once, when the process starts, so a script re-executes itself with the setting
(`rerun_with_huge_pages()`, same PID and arguments) before it does any work. TRM_JAX_HUGE_PAGES=0 leaves
the allocator as it is. In your own programs, export the variable before Python starts (a notebook:
before launching Jupyter).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Mapping, NoReturn, Optional, Sequence

TUNABLE = "glibc.malloc.hugetlb"
SETTING = f"{TUNABLE}=1"
OPT_OUT = "TRM_JAX_HUGE_PAGES"  # "0": never re-execute
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with the hugetlb tunable


def glibc_version() -> Optional[tuple]:
    """(major, minor) of the running glibc; None elsewhere (macOS, Windows, musl)."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return tuple(int(p) for p in version.split(".")[:2]) if name == "glibc" else None
    except (AttributeError, ValueError, OSError):
        return None


def thp_mode(path: str = THP_MODE_FILE) -> Optional[str]:
    """The kernel's transparent-huge-page mode (always, madvise or never); None where unknown."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def _tunable_items(environ: Mapping[str, str]) -> list:
    return [item for item in environ.get("GLIBC_TUNABLES", "").split(":") if item]


def _setting(environ: Mapping[str, str]) -> Optional[str]:
    """The value `environ` gives the hugetlb tunable (the last one counts), or None."""
    values = [item.partition("=")[2] for item in _tunable_items(environ) if item.partition("=")[0] == TUNABLE]
    return values[-1] if values else None


def _system_has_them(glibc: Optional[tuple], mode: Optional[str]) -> bool:
    return glibc is not None and glibc >= MIN_GLIBC and mode in ("always", "madvise")


def with_huge_pages(environ: Mapping[str, str], on: bool = True) -> dict:
    """`environ` with malloc's huge pages set on or off (for a child process), other tunables kept."""
    items = [item for item in _tunable_items(environ) if item.partition("=")[0] != TUNABLE]
    return {**environ, "GLIBC_TUNABLES": ":".join([*items, f"{TUNABLE}={int(on)}"])}


def huge_pages_env(environ: Mapping[str, str], glibc: Optional[tuple], mode: Optional[str]) -> Optional[dict]:
    """`environ` with glibc's malloc asked for huge pages, or None when that is unavailable, already
    decided (the tunable is set either way) or opted out of."""
    if environ.get(OPT_OUT, "1") == "0" or not _system_has_them(glibc, mode) or _setting(environ) is not None:
        return None
    return with_huge_pages(environ)


def huge_pages_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a process with `environ` from its start has malloc on huge pages (if the system gives them)."""
    return _setting(environ) not in (None, "0") and _system_has_them(glibc_version(), thp_mode())


def started_as(orig_argv: Sequence[str], argv: Sequence[str]) -> bool:
    """Whether the process was started to run the script `argv[0]` with `argv[1:]`: `python [options]
    script args` or `python [options] -m module args`; not a script run from inside another program
    (`runpy` under pytest), where re-executing would restart that program."""
    n = len(argv) - 1
    if n < 0 or len(orig_argv) < n + 2 or list(orig_argv[len(orig_argv) - n:]) != list(argv[1:]):
        return False
    head = orig_argv[:len(orig_argv) - n]
    if len(head) >= 3 and head[-2] == "-m":
        module = os.path.join(*head[-1].split("."))
        return argv[0].endswith((module + ".py", os.path.join(module, "__main__.py")))
    return os.path.abspath(head[-1]) == os.path.abspath(argv[0])


def rerun_with_huge_pages() -> None:
    """Re-execute the running script with malloc on huge pages; returns without doing anything when
    the process has them already, cannot have them, was opted out (TRM_JAX_HUGE_PAGES=0), or was not
    started to run this script from a file (`python -c`, standard input, `runpy` inside pytest).
    Call it before anything else runs: the process image is replaced (same PID, arguments, open files)."""
    env = huge_pages_env(os.environ, glibc_version(), thp_mode())
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv or not started_as(argv, sys.argv) or not os.path.isfile(sys.argv[0]):
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def launch(main: Callable[[], object]) -> NoReturn:
    """Run a script's `main()` in a process with malloc on huge pages (`rerun_with_huge_pages` first) and
    exit with its status: the int it returns, else 0; a `TRMError` (a user's mistake) prints
    `error: ...` and exits 2."""
    rerun_with_huge_pages()
    from trm_jax.errors import TRMError  # after the re-execution: the first process imports nothing heavy

    try:
        status = main()
    except TRMError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    sys.exit(status if type(status) is int else 0)


__all__ = ["huge_pages_enabled", "huge_pages_env", "launch", "rerun_with_huge_pages", "started_as",
           "with_huge_pages"]
