"""The quickstart notebook runs headless, end to end, with a few training steps."""

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "quickstart.ipynb")


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("TRM_QUICKSTART_STEPS", "1")
    monkeypatch.setenv("TRM_QUICKSTART_DIR", str(tmp_path / "runs"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "held-out exact accuracy:" in text and "cells right:" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the metrics plot should be displayed"
    assert (tmp_path / "runs" / "code" / "plots" / "overview.png").exists()
