"""plot_metrics on a synthetic metrics.jsonl: files exist, are PNGs, and bad dirs give a clear error."""

import json
import subprocess
import sys

import pytest

from trm_jax.errors import TRMError
from trm_jax.plotting import plot_metrics


def write_metrics(run_dir):
    with open(run_dir / "metrics.jsonl", "w") as f:
        for step in range(10, 110, 10):
            f.write(json.dumps(dict(split="train", step=step, loss=1 / step, ce=0.5 / step, halt_loss=0.1,
                                    token_accuracy=step / 120, exact_accuracy=step / 200, recursion_depth=2.0,
                                    tokens_per_sec=1000.0 + step)) + "\n")
        f.write(json.dumps(dict(split="eval", step=100, exact_accuracy=0.4, token_accuracy=0.8,
                                recursion_depth=3.1)) + "\n")


def test_plots_written(tmp_path):
    write_metrics(tmp_path)
    paths = plot_metrics(str(tmp_path))
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["accuracy.png", "loss.png", "overview.png", "recursion_depth.png", "throughput.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_missing_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(TRMError, match="no metrics.jsonl"):
        plot_metrics(str(tmp_path))


def test_cli(tmp_path):
    write_metrics(tmp_path)
    out = subprocess.run([sys.executable, "scripts/plot_metrics.py", str(tmp_path), "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, check=True).stdout
    assert out.count(".png") == 5
    bad = subprocess.run([sys.executable, "scripts/plot_metrics.py", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no metrics.jsonl" in bad.stderr and "Traceback" not in bad.stderr
