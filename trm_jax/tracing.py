"""`trace(params, query)`: the recursion of one query step by step (the answer after every supervision step,
its halting probability, what each step changed, why it stopped), as `plot_trace` draws it.

The trace runs `trm_jax.models.predict_steps` on the row `infer` would run (the task encodes the query:
`Task.trace_input`) with infer's options and noise keys, so its last answer is the answer `infer` returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from trm_jax.inference import as_trm_params
from trm_jax.models import predict_steps
from trm_jax.models.trajectories import check_options, indexed_keys
from trm_jax.plotting import trace_png  # matplotlib itself loads only when a trace is drawn
from trm_jax.tasks import get_task


@dataclasses.dataclass(frozen=True, eq=False)
class Trace:
    """One query's recursion, one entry per supervision step (of the trajectory `infer` answers with).

    `trm_jax.trace` returns one. Answers are decoded as `infer` decodes them: text for text tasks, 81
    digits for Sudoku ('0': still blank), the maze grid with the path marked 'o', a colour grid (list of
    rows) for ARC. A position is an index into the answer read flat: a character of a text or grid
    string, `row * width + col` of an ARC grid. In a notebook a trace shows itself as the picture
    `trm_jax.plot_trace` draws.

    Attributes:
        kind: How the answers are drawn (the task's answer_kind): "text", "sudoku_grid", "maze_grid" or
            "colour_grid".
        task: The run's `data.task`.
        query: The query as given.
        start: The query read as an answer (the input decoded): Sudoku givens, the maze, ARC's test input.
        answers: The decoded answer after each supervision step.
        halt_prob: sigmoid(halt logit) after each step.
        changed: Per step, the positions whose answer differs from the step before (step 1: from `start`).
        stopped_by: "halted" (the halting head), "settled" (the answer stopped changing) or "cap" (the
            depth cap).
        solution: The right answer where known (`solution=`, or an ARC task's test output), else None.
        trajectory: Which trajectory this is.
        chosen: The trajectory `infer` answers with (`select=`).
        all_trajectories: Every trajectory's trace when `trajectories > 1` (read `trajectories`), else ().
    """

    kind: str
    task: str
    query: Any
    start: Any
    answers: list
    halt_prob: list
    changed: list
    stopped_by: str
    solution: Any = None
    trajectory: int = 0
    chosen: int = 0
    all_trajectories: tuple = dataclasses.field(default=(), repr=False)

    @property
    def recursion_depth(self) -> int:
        """Supervision steps run (the step the trajectory stopped at)."""
        return len(self.answers)

    @property
    def answer(self) -> Any:
        """The final answer: what `infer` returns for the chosen trajectory."""
        return self.answers[-1]

    @property
    def trajectories(self) -> tuple:
        """Every trajectory's trace (`trajectories > 1`), indexed by trajectory; else just this one."""
        return self.all_trajectories or (self,)

    def wrong(self, step: int = -1) -> Optional[list]:
        """Positions of one step's answer that differ from the solution.

        Args:
            step: Index into `answers`; -1 = the last.

        Returns:
            The differing positions, or None when the trace has no solution.
        """
        if self.solution is None:
            return None
        return _differences(self.solution, self.answers[step])

    def __repr__(self) -> str:
        probs = ", ".join(f"{p:.2f}" for p in self.halt_prob)
        more = f", trajectory {self.trajectory} of {len(self.trajectories)}" if len(self.trajectories) > 1 else ""
        return (f"Trace({self.kind} task {self.task!r}, {self.recursion_depth} steps, stopped_by={self.stopped_by!r}"
                f", halt_prob=[{probs}]{more}, answer={_short(self.answer)})")

    def _repr_png_(self) -> bytes:
        return trace_png(self)


def trace(params, query, *, max_recursion_depth: Optional[int] = None, halting: Optional[str] = None,
          settle_steps: Optional[int] = None, halt_threshold: Optional[float] = None, trajectories: int = 1,
          noise_std: Optional[float] = None, select: str = "halt", seed: int = 0, solution: Any = None,
          test_index: int = 0, config=None, tokenizer=None, retriever=None) -> Trace:
    """The recursion of one query, step by step.

    Args:
        params: What `trm_jax.load` returns (or raw params with `config=`, as `infer`).
        query: One query as `infer` takes it: a text, an 81-character Sudoku, a maze grid, an ARC task.
        max_recursion_depth: Supervision steps at most (default: the model's); as `infer`.
        halting: "head" (the halting head) or "settled" (the answer unchanged for `settle_steps` steps);
            default: the model's.
        settle_steps: For `halting="settled"`.
        halt_threshold: The halting head's threshold (default: the model's; ARC: no early halting, as `infer`).
        trajectories: Noisy trajectories to run; the trace is of the one `infer` answers with.
        noise_std: Their noise scale (default with trajectories > 1: `trm_jax.models.DEFAULT_NOISE_STD`).
        select: How `infer` picks a trajectory: "halt", "vote", "settled" or "verify" (the task's verifier).
        seed: Key of the noise, as `infer`'s: with the same options the trace's last answer is `infer`'s.
        solution: The right answer, for marking wrong cells (Sudoku digits, the maze with its path); an
            ARC task's test output is used when the task gives it. Nothing is looked up otherwise.
        test_index: Which test input of an ARC task to follow.
        config: With raw params: the config they were trained with (as `infer`).
        tokenizer: With raw params: their tokenizer (default: the task's).
        retriever: With raw params of a model that retrieves: its retriever.

    Returns:
        A `Trace` of the trajectory `infer` answers with; `trace.trajectories[k]` is trajectory k's. An ARC
        trace follows the task's original augmentation (infer votes over all of them).

    Raises:
        TRMError: A query the task cannot parse, or a bad option.
    """
    p = as_trm_params(params, config=config, tokenizer=tokenizer, retriever=retriever)
    task = get_task(p.config)
    row = task.trace_input(p, query, test_index=test_index)
    noise_std = check_options(trajectories, noise_std, select)
    options = dict(row.predict_options or {})
    if halt_threshold is not None:
        options["halt_threshold"] = halt_threshold
    # query 0 of a batch: the noise key infer gives a single query
    keys = None if noise_std is None else indexed_keys(seed, np.arange(1))
    record = predict_steps(p.model, p.params, row.tokens, puzzle_ids=row.puzzle_ids,
                           max_recursion_depth=max_recursion_depth, halting=halting, settle_steps=settle_steps,
                           trajectories=trajectories, noise_std=noise_std, select=select, rng=keys,
                           verifier=task.select_verifier(p.tokenizer, select), **options)
    start = row.decode(row.tokens[0])
    if solution is None:
        solution = row.solution
    elif isinstance(solution, str) and task.answer_kind != "text":  # a grid written as infer's queries are
        solution_row = task.trace_input(p, solution)
        solution = solution_row.decode(solution_row.tokens[0])
    elif not isinstance(solution, str):
        solution = np.asarray(solution).tolist()
    base = dict(kind=task.answer_kind, task=task.name, query=query, start=start, solution=solution,
                chosen=int(record.chosen[0]))
    traces = []
    for k in range(trajectories):
        depth = int(record.recursion_depth[k, 0])
        answers = [row.decode(record.tokens[s, k, 0]) for s in range(depth)]
        changed = [_differences(before, after) for before, after in zip([start, *answers[:-1]], answers)]
        traces.append(Trace(answers=answers, halt_prob=[float(x) for x in record.halt_prob[:depth, k, 0]],
                            changed=changed, stopped_by=str(record.stopped_by[k, 0]), trajectory=k, **base))
    chosen = traces[base["chosen"]]
    return dataclasses.replace(chosen, all_trajectories=tuple(traces)) if trajectories > 1 else chosen


def flat_cells(answer) -> tuple[tuple, list]:
    """(shape, cells read flat) of an answer: a string's characters, a grid's (list of rows) cells."""
    if isinstance(answer, str):
        return (len(answer),), list(answer)
    grid = np.asarray(answer)
    if grid.ndim != 2:
        grid = grid.reshape(0, 0) if grid.size == 0 else grid.reshape(1, -1)
    return grid.shape, grid.reshape(-1).tolist()


def _differences(before, after) -> list:
    """Positions of `after` whose cell differs from `before` at the same position: a text's characters past
    the end of `before` count as changed, every cell of a grid whose size changed does."""
    shape_b, cells_b = flat_cells(before)
    shape_a, cells_a = flat_cells(after)
    if shape_a != shape_b and (len(shape_a) > 1 or len(shape_b) > 1):
        return list(range(len(cells_a)))
    return [i for i, y in enumerate(cells_a) if i >= len(cells_b) or cells_b[i] != y]


def _short(answer) -> str:
    text = answer if isinstance(answer, str) else str(answer)
    return repr(text if len(text) <= 40 else text[:37] + "...")
