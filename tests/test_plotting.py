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


# ------------------------------------------------------------------------------------------ plot_trace

def synthetic_trace(kind, steps=3, solution=True):
    """A Trace built by hand (no model): grids of each kind, answers that change step by step."""
    from trm_jax.tracing import Trace, _differences

    if kind == "sudoku_grid":
        start = "0" * 40 + "123456789" * 3 + "0" * 14
        answers = [start.replace("0", str(1 + (s + i) % 9), 20 + 20 * s)[:81] for s, i in enumerate(range(steps))]
        right = answers[-1]
    elif kind == "maze_grid":
        start = "#######" + "#S    #" + "# ### #" + "#   # #" + "### # #" + "#    G#" + "#######"
        path = [8 + 1 + 1, 8 + 2 + 1, 8 + 3 + 1]
        answers = ["".join("o" if i in path[:s + 1] else c for i, c in enumerate(start)) for s in range(steps)]
        right = answers[-1]
    elif kind == "colour_grid":
        start = [[0, 1, 2], [3, 4, 5]]
        answers = [[[(c + s) % 10 for c in row] for row in start] for s in range(steps)]
        answers[0] = [[1, 2]]  # a grid of another size at step 1
        right = answers[-1]
    else:
        start, answers, right = "kav(4)", [f"{7 + s}" * (s + 1) for s in range(steps)], "7"
    changed = [_differences(a, b) for a, b in zip([start, *answers[:-1]], answers)]
    return Trace(kind=kind, task=kind, query=start, start=start, answers=answers,
                 halt_prob=[0.1 + 0.3 * s for s in range(steps)], changed=changed, stopped_by="halted",
                 solution=right if solution else None)


KINDS = ["sudoku_grid", "maze_grid", "colour_grid", "text"]


@pytest.mark.parametrize("kind", KINDS)
def test_trace_gif_has_one_frame_per_step_and_png_is_a_strip(kind, tmp_path):
    from PIL import Image

    from trm_jax.plotting import plot_trace

    for steps, solution in ((4, True), (1, False)):
        t = synthetic_trace(kind, steps, solution)
        gif = plot_trace(t, tmp_path / f"{kind}{steps}.gif")
        with Image.open(gif) as im:
            assert im.format == "GIF" and im.n_frames == len(t.answers)
        png = plot_trace(t, str(tmp_path / f"{kind}{steps}.PNG"))
        with Image.open(png) as im:
            assert im.format == "PNG"
            if kind != "text" and steps == 4:  # a strip: every step side by side
                assert im.width > 2 * im.height


def test_a_trace_shows_itself_in_a_notebook_and_leaves_pyplot_alone():
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    for kind in KINDS:
        data = synthetic_trace(kind)._repr_png_()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


def test_bad_trace_arguments_are_clear_errors(tmp_path):
    from trm_jax.plotting import plot_trace

    t = synthetic_trace("sudoku_grid")
    for name in ("t.jpg", "t", "t.gif.txt"):
        with pytest.raises(TRMError, match=r"\.png, \.gif"):
            plot_trace(t, tmp_path / name)
    with pytest.raises(TRMError, match="trm_jax.trace"):
        plot_trace({"answers": []}, tmp_path / "t.png")
    with pytest.raises(TRMError, match="does not exist"):
        plot_trace(t, tmp_path / "no" / "t.png")
    assert not any(p.suffix in (".jpg", ".png") for p in tmp_path.iterdir())
