import pathlib
"""The rag benchmark runs end to end at a tiny size (numbers are printed, never asserted)."""

import json
import runpy
import sys

import pytest
from _paths import REPO

SCRIPT = pathlib.Path(REPO) / "scripts" / "benchmark.py"


def test_benchmark_rag_subcommand_smoke(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--json", str(out), "rag", "--num-vectors", "3000", "--dim", "16",
                                      "--batch", "8", "--single", "4", "--repeats", "1"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    results = json.loads(out.read_text())
    assert results["ours_batched_qps"] > 0 and results["ours_single_qps"] > 0
    printed = capsys.readouterr().out
    assert "batched" in printed and "single" in printed
    try:
        import faiss  # noqa: F401
    except ImportError:
        assert "faiss is not installed" in printed
    else:
        assert results["topk_agreement"] > 0.99  # both exact; float rounding may swap a near-tie
        assert results["batched_ratio"] > 0 and "ours/faiss" in printed
