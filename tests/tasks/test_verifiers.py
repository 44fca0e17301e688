"""Task verifiers: Sudoku (the rules and the givens) and maze (a simple S-to-G path over open cells) against
hand-made valid and invalid answers, in text and token form; text and ARC tasks have none."""

import os

import numpy as np
import pytest

from trm_jax.config import TRMConfig
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.tasks.maze import mazes
from trm_jax.tasks.sudoku import generate_sudoku, grids_to_texts
from _paths import REPO

EXAMPLE_JSONL = os.path.join(REPO, "trm_jax", "tasks", "example.jsonl")

# a solved grid (rows are shifts of 123456789 by 3, 3, 1 within and across bands) and a puzzle of it
SOLUTION = "".join("".join(str((r * 3 + r // 3 + c) % 9 + 1) for c in range(9)) for r in range(9))
PUZZLE = "".join(ch if i % 3 == 0 else "." for i, ch in enumerate(SOLUTION))


def task(name, **data):
    return get_task(TRMConfig.from_dict(dict(data=dict(task=name, **data))))


def with_cell(text, i, ch):
    return text[:i] + ch + text[i + 1:]


def test_sudoku_verifier_checks_rules_and_givens():
    sudoku = task("sudoku", seq_len=81)
    assert sudoku.verify(PUZZLE, SOLUTION)
    blank = PUZZLE.index(".")
    wrong = with_cell(SOLUTION, blank, str(int(SOLUTION[blank]) % 9 + 1))  # one wrong digit: a unit repeats
    relabelled = SOLUTION.translate(str.maketrans("123456789", "234567891"))  # a valid grid, givens broken
    assert not sudoku.verify(PUZZLE, wrong)
    assert not sudoku.verify(PUZZLE, relabelled)
    assert sudoku.verify(relabelled.replace("1", "."), relabelled)
    assert not sudoku.verify(PUZZLE, with_cell(SOLUTION, blank, "0"))  # incomplete
    for garbage in (SOLUTION[:80], "x" * 81, None):
        assert not sudoku.verify(PUZZLE, garbage)
    with pytest.raises(TRMError, match="81 cells"):
        sudoku.verify(PUZZLE[:80], SOLUTION)  # a bad query is the caller's mistake


def test_sudoku_token_verifier_agrees_with_the_text_form():
    sudoku = task("sudoku", seq_len=90)
    tok = sudoku.tokenizer()[0]
    verifier = sudoku.verifier(tok)
    puzzles, solutions = generate_sudoku(4, seed=5, difficulty=0.5)
    pairs = [(PUZZLE, SOLUTION), (PUZZLE, SOLUTION.translate(str.maketrans("12", "21")))]
    pairs += list(zip(grids_to_texts(puzzles), grids_to_texts(solutions)))
    pairs += [(q, with_cell(a, q.index("."), str(int(a[q.index(".")]) % 9 + 1))) for q, a in pairs[2:]]
    for q, a in pairs:
        row_q, _ = sudoku.encode([q], tok, 90)
        row_a, _ = sudoku.encode([a], tok, 90)  # the answer's tokens, as the model would write them
        assert verifier(row_q[0], row_a[0]) == sudoku.verify(q, a)
    assert sum(verifier(sudoku.encode([q], tok, 90)[0][0], sudoku.encode([a], tok, 90)[0][0]) for q, a in pairs) == 5
    # padding rows and tokens outside the vocabulary are answers that fail, not errors
    row = sudoku.encode([PUZZLE], tok, 90)[0][0]
    assert not verifier(np.zeros(90, np.int32), np.zeros(90, np.int32))
    assert not verifier(row, np.full(90, 10_000))
    assert not verifier(row, np.full(90, -3))


# a 5x5 maze: S top left, G bottom right, two wall bars
MAZE = ("S    "
        " ### "
        "     "
        " ### "
        "    G")
SHORT = ("Soooo"
         " ###o"
         "    o"
         " ###o"
         "    G")


def test_maze_verifier_accepts_simple_paths_from_s_to_g():
    maze = task("maze", maze_size=5, seq_len=25)
    assert maze.verify(MAZE, SHORT)
    detour = ("Soooo"
              " ###o"
              "ooooo"
              "o### "
              "ooooG")
    assert maze.verify(MAZE, detour)  # any simple path, not only a shortest one
    through_wall = ("S    "
                    "o### "
                    "ooo  "
                    " #o# "  # 'o' on a wall cell
                    "  ooG")
    bad = dict(gap=with_cell(SHORT, 2, " "), through_wall=through_wall,
               dead_end=with_cell(SHORT, 10, "o"),  # an 'o' off the path
               no_path=MAZE, start_moved=SHORT.replace("S", "o"), goal_gone=SHORT[:-1] + "o", short=SHORT[:24],
               foreign=SHORT.replace("o", "x"), not_text=7)
    for name, answer in bad.items():
        assert not maze.verify(MAZE, answer), name
    with pytest.raises(TRMError, match="charset"):
        maze.verify(MAZE.replace(" ", "."), SHORT)


def test_maze_token_verifier_agrees_with_the_text_form():
    maze = task("maze", maze_size=7, seq_len=64)
    tok = maze.tokenizer()[0]
    verifier = maze.verifier(tok)
    questions, answers, _ = mazes.generate_maze_arrays(4, size=7, seed=3)
    pairs = list(zip(mazes.maze_texts(questions), mazes.maze_texts(answers)))
    pairs += [(q, a.replace("o", " ", 1)) for q, a in pairs]  # a gap in each path
    for q, a in pairs:
        row_q, _ = maze.encode([q], tok, 64)
        row_a = np.concatenate([mazes.maze_ids([a])[0], np.zeros(64 - 49, np.int8)])
        assert verifier(row_q[0], row_a) == maze.verify(q, a)
    assert [maze.verify(q, a) for q, a in pairs] == [True] * 4 + [False] * 4
    assert not verifier(np.zeros(64, np.int32), np.zeros(64, np.int32))  # a padding row
    assert not verifier(maze.encode([pairs[0][0]], tok, 64)[0][0], np.full(64, 99))


@pytest.mark.parametrize("name, data", [("code", {}), ("jsonl", {"train_path": EXAMPLE_JSONL}),
                                        ("arc", {"seq_len": 900})])
def test_text_and_arc_tasks_have_no_verifier(name, data):
    t = task(name, **data)
    assert t.verifier(None) is None
    with pytest.raises(TRMError, match=f"the {name!r} task has no verifier"):
        t.verify("q", "a")
    with pytest.raises(TRMError, match="select='verify'.*no verifier"):
        t.select_verifier(None, "verify")
    assert t.select_verifier(None, "vote", details=True) is None
