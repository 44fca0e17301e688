"""Pictures: PNG plots of a run's `metrics.jsonl` and the steps of a `trm_jax.trace` (PNG strip or GIF).

Traces are drawn on figures of their own (not pyplot's), so a notebook's backend and figures are left alone.
"""

from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np

from trm_jax.errors import TRMError
from trm_jax.training.run_dir import METRICS_FILE, read_metrics

PANELS = {
    "loss": [("train", "loss"), ("train", "ce"), ("train", "halt_loss")],
    "accuracy": [("train", "token_accuracy"), ("train", "exact_accuracy"),
                 ("eval", "token_accuracy"), ("eval", "exact_accuracy")],
    "recursion_depth": [("train", "recursion_depth"), ("eval", "recursion_depth")],
    "throughput": [("train", "tokens_per_sec")],
}


def _series(records, split, key):
    pts = [(r["step"], r[key]) for r in records
           if r.get("split") == split and isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_metrics(run_dir: str, out_dir: Optional[str] = None) -> list[str]:
    """Plot a run's metrics.jsonl: loss, accuracy, recursion depth and throughput PNGs, and a 2x2 overview.

    Args:
        run_dir: The run directory (scripts/train.py's), holding metrics.jsonl.
        out_dir: Where the PNGs go; None = run_dir/plots.

    Returns:
        The paths of the PNGs written, the overview last.

    Raises:
        TRMError: The run has no metrics.jsonl, or no training records in it yet.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise TRMError(f"no {METRICS_FILE} in {run_dir}; pass the run directory written by scripts/train.py")
    records = read_metrics(path, split=None)
    if not any(r.get("split") == "train" for r in records):
        raise TRMError(f"{path} has no training records yet; plot after at least one log interval")
    out_dir = out_dir or os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)

    def draw(ax, name):
        for split, key in PANELS[name]:
            xs, ys = _series(records, split, key)
            if xs:
                ax.plot(xs, ys, marker="o" if split == "eval" else None, markersize=3, label=f"{split} {key}")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)

    paths = []
    for name in PANELS:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax, name)
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"{name}.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, name in zip(axes.flat, PANELS):
        draw(ax, name)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "overview.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------------ traces

TRACE_FORMATS = (".png", ".gif")  # a strip of every step, or an animation with one frame per step
# the official ARC palette (arcprize.org): colours 0..9
ARC_COLOURS = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
               "#870C25")
MAZE_COLOURS = {"#": "#2B2B2B", " ": "#FFFFFF", "S": "#2ECC40", "G": "#FF4136", "o": "#0074D9"}
CHANGED = "#FFE14D"  # cells a step changed
WRONG = "#E0201B"  # cells that differ from the solution
GIVEN = "#E4E4E4"  # Sudoku givens' background


def plot_trace(trace, path, *, fps: float = 2.0, columns: int = 8) -> str:
    """Draw a `trm_jax.trace` as a PNG strip or an animated GIF, by the extension of `path`.

    Grids are drawn as grids: Sudoku givens shaded apart from the model's digits, maze walls, start,
    goal and path, ARC's ten colours (with the test input beside the answer); cells a step changed are
    highlighted, cells that differ from the solution (when the trace knows it) marked in red. Text
    answers are a table of steps.

    Args:
        trace: What `trm_jax.trace` returns; `trace.trajectories[k]` draws trajectory k.
        path: The picture's file: ".png" (every step side by side) or ".gif" (one frame per entry of
            `trace.answers`); its folder must exist.
        fps: Frames per second of a GIF.
        columns: Steps per row of a PNG strip.

    Returns:
        `path`.

    Raises:
        TRMError: An extension other than .png or .gif, something that is not a Trace, `fps` <= 0, or a
            folder that does not exist.
    """
    from matplotlib.animation import PillowWriter

    ext = trace_format(path)
    _check_trace(trace)
    if not fps > 0:
        raise TRMError(f"plot_trace: fps must be > 0, got {fps}")
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(directory):
        raise TRMError(f"plot_trace: the folder {directory} does not exist; create it first")
    if ext == ".png":
        _strip_figure(trace, columns).savefig(path, dpi=100)
        return os.fspath(path)
    fig = _frame_figure(trace)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, os.fspath(path), dpi=100):
        for step in range(len(trace.answers)):
            _draw_frame(fig, trace, step)
            writer.grab_frame()
    return os.fspath(path)


def trace_format(path) -> str:
    """The picture `plot_trace` writes to `path`: ".png" or ".gif"; TRMError naming both for another extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in TRACE_FORMATS:
        raise TRMError(f"plot_trace: {os.fspath(path)!r} has the extension {ext or '(none)'!r}; use one of "
                       f"{', '.join(TRACE_FORMATS)} (.png: a strip of every step, .gif: one frame per step)")
    return ext


def trace_png(trace, columns: int = 8) -> bytes:
    """The PNG strip of `plot_trace`, in memory (a Trace's picture in a notebook)."""
    _check_trace(trace)
    buf = io.BytesIO()
    _strip_figure(trace, columns).savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _check_trace(trace) -> None:
    if not (hasattr(trace, "answers") and hasattr(trace, "stopped_by")):  # duck-typed: tracing imports plotting
        raise TRMError(f"plot_trace draws what trm_jax.trace(params, query) returns, got {type(trace).__name__}")
    if not trace.answers:
        raise TRMError("plot_trace: the trace has no steps")


def _figure(width: float, height: float):
    # a Figure of its own, not pyplot's: drawing a trace leaves the user's backend and open figures alone
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _panels(trace) -> list:
    """The strip's panels: (title, answer, changed, wrong) per step, after the query where it is a grid of
    another layout than the answers (ARC's test input) and before the solution of an ARC task."""
    n = len(trace.answers)
    out = []
    if trace.kind == "colour_grid":
        out.append(("test input", trace.start, [], []))
    for s in range(n):
        title = f"step {s + 1}  halt {trace.halt_prob[s]:.2f}" + (f"\n{trace.stopped_by}" if s == n - 1 else "")
        out.append((title, trace.answers[s], trace.changed[s], trace.wrong(s) or []))
    if trace.kind == "colour_grid" and trace.solution is not None:
        out.append(("solution", trace.solution, [], []))
    return out


def _title(trace) -> str:
    wrong = trace.wrong()
    if wrong is None:
        verdict = ""
    elif trace.kind == "text":
        verdict = "  ·  right" if not wrong else "  ·  wrong"
    else:
        verdict = "  ·  solved" if not wrong else f"  ·  {len(wrong)} cells wrong"
    more = f"  ·  trajectory {trace.trajectory} of {len(trace.trajectories)}" if len(trace.trajectories) > 1 else ""
    steps = len(trace.answers)
    return f"{trace.task}: {steps} step{'s' * (steps != 1)}, stopped by {trace.stopped_by}{verdict}{more}"


def _strip_figure(trace, columns: int):
    if trace.kind == "text":
        fig = _figure(9.0, 1.0 + 0.3 * (len(trace.answers) + 1))
        _draw_table(fig.add_subplot(1, 1, 1), trace, len(trace.answers) - 1)
        fig.suptitle(_title(trace), fontsize=10)
        fig.tight_layout()
        return fig
    panels = _panels(trace)
    cols = max(1, min(int(columns), len(panels)))
    rows = -(-len(panels) // cols)
    size = 2.2
    fig = _figure(max(cols * size, 4.5), rows * (size + 0.45) + 0.4)  # wide enough for the title
    for i, (title, answer, changed, wrong) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_grid(ax, trace, answer, changed, wrong)
        ax.set_title(title, fontsize=8)
    fig.suptitle(_title(trace), fontsize=10)
    fig.tight_layout()
    return fig


def _frame_figure(trace):
    if trace.kind == "text":
        return _figure(9.0, 1.3 + 0.3 * (len(trace.answers) + 1))
    panels = 1 + (trace.kind == "colour_grid") + (trace.kind == "colour_grid" and trace.solution is not None)
    return _figure(3.2 * panels, 3.7)


def _draw_frame(fig, trace, step: int) -> None:
    fig.clear()
    fig.suptitle(f"{_title(trace)}\nstep {step + 1} of {len(trace.answers)}, halt probability "
                 f"{trace.halt_prob[step]:.2f}", fontsize=9)
    if trace.kind == "text":
        _draw_table(fig.add_subplot(1, 1, 1), trace, step)
        fig.tight_layout()
        return
    panels = [(None, trace.answers[step], trace.changed[step], trace.wrong(step) or [])]
    if trace.kind == "colour_grid":
        panels.insert(0, ("test input", trace.start, [], []))
        if trace.solution is not None:
            panels.append(("solution", trace.solution, [], []))
    for i, (title, answer, changed, wrong) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        _draw_grid(ax, trace, answer, changed, wrong)
        if title:
            ax.set_title(title, fontsize=8)
    fig.tight_layout()


def _draw_grid(ax, trace, answer, changed, wrong) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if trace.kind == "sudoku_grid":
        _draw_sudoku(ax, trace.start, answer, changed, wrong)
    elif trace.kind == "maze_grid":
        _draw_maze(ax, trace.start, answer, changed, wrong)
    else:
        _draw_arc(ax, answer, changed, wrong)


def _cell_marks(ax, positions, width: int, colour: str, *, fill: bool, alpha: float = 1.0) -> None:
    from matplotlib.patches import Rectangle

    for i in positions:
        r, c = divmod(int(i), width)
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=colour if fill else "none", alpha=alpha,
                               edgecolor=colour, linewidth=0 if fill else 1.6))


def _draw_sudoku(ax, start: str, answer: str, changed, wrong) -> None:

    cells = (answer + "?" * 81)[:81]  # an answer that decoded short (untrained tokens) still fills the board
    given = np.array([ch not in ".0" for ch in start[:81]]).reshape(9, 9)
    ax.imshow(np.where(given[..., None], 0.894, 1.0) * np.ones((9, 9, 3)), vmin=0, vmax=1, extent=(-0.5, 8.5, 8.5, -0.5))
    _cell_marks(ax, [i for i in changed if i < 81 and not given.flat[i]], 9, CHANGED, fill=True, alpha=0.8)
    bad = set(wrong)
    for i, ch in enumerate(cells):
        if ch in ".0":
            continue
        r, c = divmod(i, 9)
        colour = "black" if given.flat[i] else (WRONG if i in bad else "#1F5FBF")
        ax.text(c, r, ch, ha="center", va="center", fontsize=9, color=colour,
                fontweight="bold" if given.flat[i] else "normal")
    _cell_marks(ax, [i for i in bad if i < 81], 9, WRONG, fill=False)
    for k in range(10):
        w = 1.6 if k % 3 == 0 else 0.4
        ax.axhline(k - 0.5, color="black", linewidth=w)
        ax.axvline(k - 0.5, color="black", linewidth=w)
    ax.set_xlim(-0.5, 8.5)
    ax.set_ylim(8.5, -0.5)


def _draw_maze(ax, start: str, answer: str, changed, wrong) -> None:
    from matplotlib.colors import to_rgb

    side = max(1, int(round(len(start) ** 0.5)))
    cells = list((answer + "?" * len(start))[:side * side])
    for i, ch in enumerate(start[:side * side]):
        if ch in "SG":  # start and goal as the query gives them, whatever the model wrote there
            cells[i] = ch
    image = np.array([to_rgb(MAZE_COLOURS.get(ch, "#9A9A9A")) for ch in cells]).reshape(side, side, 3)
    ax.imshow(image, extent=(-0.5, side - 0.5, side - 0.5, -0.5))
    _cell_marks(ax, [i for i in changed if i < side * side], side, CHANGED, fill=False)
    bad = [i for i in wrong if i < side * side]
    if bad:
        r, c = np.divmod(np.asarray(bad), side)
        ax.scatter(c, r, marker="x", s=max(4.0, 900.0 / side ** 2), color=WRONG, linewidths=1.2)
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(side - 0.5, -0.5)


def _draw_arc(ax, grid, changed, wrong) -> None:
    from matplotlib.colors import ListedColormap

    g = np.asarray(grid, dtype=np.int64)
    if g.ndim != 2 or g.size == 0:
        ax.text(0.5, 0.5, "(no grid)", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return
    h, w = g.shape
    ax.imshow(g, cmap=ListedColormap(ARC_COLOURS), vmin=0, vmax=9, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for k in range(h + 1):
        ax.axhline(k - 0.5, color="#555555", linewidth=0.4)
    for k in range(w + 1):
        ax.axvline(k - 0.5, color="#555555", linewidth=0.4)
    _cell_marks(ax, [i for i in changed if i < h * w], w, CHANGED, fill=False)
    bad = [i for i in wrong if i < h * w]
    if bad:
        r, c = np.divmod(np.asarray(bad), w)
        ax.scatter(c, r, marker="x", s=max(4.0, 600.0 / max(h, w) ** 2), color="white", linewidths=1.2)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _draw_table(ax, trace, upto: int) -> None:
    """Text answers as a table of steps 1..upto+1 (the rest left blank, so every frame has one size)."""
    ax.axis("off")
    n = len(trace.answers)
    rows = []
    for s in range(n):
        if s > upto:
            rows.append(["", "", "", ""])
            continue
        answer = trace.answers[s]
        shown = answer if len(answer) <= 48 else answer[:45] + "..."
        rows.append([str(s + 1), repr(shown), f"{trace.halt_prob[s]:.2f}", str(len(trace.changed[s]))])
    table = ax.table(cellText=rows, colLabels=["step", "answer", "halt prob", "changed"], cellLoc="left",
                     colWidths=[0.08, 0.62, 0.14, 0.14], bbox=[0, 0, 1, 1])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for s in range(min(upto + 1, n)):
        if trace.changed[s]:
            table[s + 1, 1].set_facecolor("#FFF4B0")
        if trace.solution is not None:
            table[s + 1, 1].get_text().set_color("#1E8E3E" if trace.answers[s] == trace.solution else WRONG)
    table[upto + 1, 0].get_text().set_fontweight("bold")
    ax.set_title(f"query: {trace.query!r}"[:100] + ("" if trace.solution is None else f"   solution: "
                                                   f"{trace.solution!r}"[:60]), fontsize=9, loc="left")
