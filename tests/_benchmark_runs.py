"""What the benchmark-harness tests share: running a benchmark's `main` with what it prints captured."""

import contextlib
import io


def printed(fn, *args) -> dict:
    """{"result": fn(*args), "out": what it printed to stdout}: for a script's or benchmark's `main` run
    inside a fixture (the `once` fixture stores it as JSON), where capsys does not reach."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args)
    return {"result": result, "out": out.getvalue()}
