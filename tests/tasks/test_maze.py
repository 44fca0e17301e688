"""Maze-Hard: generated mazes checked by an independent BFS, CSV round trip and errors, dihedral
augmentation, datasets."""

from collections import deque

import numpy as np
import pytest

from trm_jax.data.grids import DihedralAugmenter, dihedral_permutations
from trm_jax.data.iterators import BatchIterator
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.tasks.maze import mazes as M
from trm_jax.tasks.maze.mazes import generate_mazes, maze_tokenizer, read_maze_csv, write_maze_csv
from _paths import REPO


def _reference_bfs(grid, size, start):
    """Distances and shortest-path counts by a plain queue BFS (independent of trm_jax.tasks.maze.mazes)."""
    dist, ways = {start: 0}, {start: 1}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < size and 0 <= nc < size and grid[nr * size + nc] != "#":
                if (nr, nc) not in dist:
                    dist[(nr, nc)] = dist[(r, c)] + 1
                    ways[(nr, nc)] = 0
                    queue.append((nr, nc))
                if dist[(nr, nc)] == dist[(r, c)] + 1:
                    ways[(nr, nc)] += ways[(r, c)]
    return dist, ways


def _check_pair(question, answer, size, min_len=None):
    assert len(question) == len(answer) == size * size
    assert set(question) <= set("# SG") and set(answer) <= set("# SGo")
    assert question.count("S") == 1 and question.count("G") == 1
    s, g = divmod(question.index("S"), size), divmod(question.index("G"), size)
    dist, ways = _reference_bfs(question, size, s)
    assert g in dist and ways[g] == 1  # reachable, exactly one shortest path
    if min_len is not None:
        assert dist[g] >= min_len
    # Walk the answer's path from S: each step goes to the one unvisited marked neighbour.
    marked = {divmod(i, size) for i, ch in enumerate(answer) if ch == "o"}
    assert all(question[r * size + c] == " " for r, c in marked)
    assert all(a == q for a, q in zip(answer, question) if a != "o")
    cur, seen, steps = s, {s}, 0
    while cur != g:
        nxt = [p for p in ((cur[0] - 1, cur[1]), (cur[0] + 1, cur[1]), (cur[0], cur[1] - 1), (cur[0], cur[1] + 1))
               if (p in marked or p == g) and p not in seen]
        assert len(nxt) == 1 or g in nxt
        cur = g if g in nxt else nxt[0]
        seen.add(cur)
        steps += 1
    assert steps == dist[g] and len(marked) == dist[g] - 1  # the path is a shortest one and nothing else is marked


def test_generated_mazes_have_one_shortest_path_independent_bfs():
    pairs = generate_mazes(12, size=30, seed=3, min_path_len=110)
    assert len(pairs) == 12
    for q, a in pairs:
        _check_pair(q, a, 30, min_len=110)
    for q, a in generate_mazes(10, size=11, seed=1):  # odd size, no length floor
        _check_pair(q, a, 11)
    assert generate_mazes(12, 30, seed=3, min_path_len=110) == pairs  # seeded
    assert generate_mazes(12, 30, seed=4, min_path_len=110) != pairs


def test_extra_openings_make_loops_but_keep_uniqueness():
    q, a, steps = M.generate_maze_arrays(20, size=15, seed=0, extra_openings=12)
    for x, y, n in zip(M.maze_texts(q), M.maze_texts(a), steps):
        _check_pair(x, y, 15)
        assert y.count("o") == n - 1
    # loops exist: more open cells than a spanning tree of the lattice would have edges + 1
    tree = M.generate_maze_arrays(1, size=15, seed=0, extra_openings=0)[0]
    assert (q == M.WALL).sum(axis=1).mean() < (tree == M.WALL).sum()


def test_csv_round_trip_and_tokens(tmp_path):
    pairs = generate_mazes(5, size=30, seed=0, min_path_len=60)
    path = str(tmp_path / "maze.csv")
    write_maze_csv(path, pairs, ratings=[len(a) for _, a in pairs])
    csv = read_maze_csv(path)
    assert csv.size == 30 and csv.questions.shape == (5, 900)
    assert M.maze_texts(csv.questions) == [q for q, _ in pairs] and M.maze_texts(csv.answers) == [a for _, a in pairs]
    tok = maze_tokenizer()
    assert tok.vocab_size == 6 and tok.encode("# SGo") == [1, 2, 3, 4, 5]  # official char2id
    assert (np.asarray(tok.encode(pairs[0][0])) == csv.questions[0]).all()


def _corrupt(tmp_path, pairs, edit, name):
    rows = [list(p) for p in pairs]
    edit(rows)
    path = str(tmp_path / name)
    write_maze_csv(path, [tuple(r) for r in rows])
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[1].__setitem__(0, r[1][0][:-1]), r"maze_\w+\.csv:3: question has 99 characters"),
    (lambda r: r[2].__setitem__(1, r[2][1].replace(" ", "x", 1)), r":4: answer holds 'x', outside the maze charset"),
    (lambda r: r[0].__setitem__(0, r[0][0].replace("G", " ")), r":2: the question must have exactly one 'G'"),
    (lambda r: r[1].__setitem__(0, r[1][0].replace(" ", "S", 1)), r":3: the question must have exactly one 'S'"),
    (lambda r: r[2].__setitem__(1, r[2][1].replace("o", " ", 1)), r":4: the answer's 'o' cells"),
    (lambda r: r[0].__setitem__(1, r[0][1].replace("#", "o", 1)), r":2: the answer differs from the question"),
])
def test_bad_csv_rows_name_file_and_line(tmp_path, edit, message):
    pairs = generate_mazes(3, size=10, seed=2, min_path_len=8)
    path = _corrupt(tmp_path, pairs, edit, f"maze_{abs(hash(message)) % 1000}.csv")
    with pytest.raises(TRMError, match=message):
        read_maze_csv(path)


def test_bad_csv_header_and_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n")
    with pytest.raises(TRMError, match="bad.csv:1: expected the header"):
        read_maze_csv(str(path))
    path.write_text("source,question,answer,rating\nx,#S G,#SoG\n")
    with pytest.raises(TRMError, match="bad.csv:2: expected 4 columns"):
        read_maze_csv(str(path))
    with pytest.raises(TRMError, match="too long"):
        M.generate_maze_arrays(1, size=10, min_path_len=80)


def test_dihedral_augmentation_matches_numpy_and_keeps_validity():
    size = 9
    grid = np.arange(81).reshape(9, 9)
    perms = dihedral_permutations(size)
    expected = [grid, np.rot90(grid), np.rot90(grid, 2), np.rot90(grid, 3), np.fliplr(grid), np.flipud(grid),
                grid.T, np.fliplr(np.rot90(grid))]
    assert all((grid.reshape(-1)[p] == e.reshape(-1)).all() for p, e in zip(perms, expected))
    q, a, _ = M.generate_maze_arrays(16, size=size, seed=5)
    inputs = np.concatenate([q, np.zeros((16, 3), np.int8)], axis=1).astype(np.int32)
    labels = np.concatenate([a, np.full((16, 3), -100)], axis=1).astype(np.int32)
    x, y = DihedralAugmenter(size)(inputs, labels, np.random.default_rng(0))
    assert (x[:, 81:] == 0).all() and (y[:, 81:] == -100).all()
    for xq, ya in zip(M.maze_texts(x[:, :81]), M.maze_texts(y[:, :81])):
        _check_pair(xq, ya, size)
    assert (x[:, :81] != inputs[:, :81]).any()


def test_build_datasets_generated_and_csv(tmp_path):
    from trm_jax.config import load_config

    cfg = load_config(None, ["data.task=maze", "data.maze_size=12", "data.num_train=6", "data.num_eval=4",
                             "data.seq_len=144", "data.maze_min_path_len=20"])
    tok, vocab, pad = get_task(cfg).tokenizer()
    assert vocab == 6 and pad == 0
    train, ev = get_task(cfg).datasets(tok)
    assert train.inputs.shape == (6, 144) and len(ev) == 4 and train.augment is not None and ev.augment is None
    assert not any((x == y).all() for x in train.inputs for y in ev.inputs)  # distinct seeds per split
    batch = next(BatchIterator(train, 4, seed=0))
    for x, y in zip(batch["inputs"], batch["labels"]):
        _check_pair(tok.decode(x), tok.decode(y), 12, min_len=20)
    path = str(tmp_path / "train.csv")
    write_maze_csv(path, generate_mazes(5, size=12, seed=9))
    cfg = load_config(None, ["data.task=maze", f"data.train_path={path}", f"data.eval_path={path}",
                             "data.seq_len=150", "data.augment=false"])
    train, ev = get_task(cfg).datasets(tok)
    assert train.inputs.shape == (5, 150) and (train.labels[:, 144:] == -100).all() and (train.inputs[:, 144:] == 0).all()
    cfg = load_config(None, ["data.task=maze", f"data.train_path={path}", "data.seq_len=100"])
    with pytest.raises(TRMError, match="needs data.seq_len >= 144"):
        get_task(cfg).datasets(tok)


# Shrinks an official recipe config to a 2-CPU smoke run (puzzle-embedding prefix kept: 16 positions, width 32).
SHRINK = ["model.dim=32", "model.num_heads=2", "model.depth=1", "model.num_latent_refinements=1",
          "model.num_refinement_blocks=2", "model.max_recursion_depth=2", "model.puzzle_emb_ndim=32",
          "model.dtype=float32", "training.batch_size=8", "training.steps=2", "training.eval_every=2",
          "training.warmup_steps=1", "training.log_every=1", "training.checkpoint_every=2",
          "training.eval_batch_size=8", "training.progress_bar=false"]


def test_maze_hard_config_trains_shrunk_through_the_script(tmp_path):
    import os
    import subprocess
    import sys

    root = REPO
    sets = SHRINK + ["data.num_train=16", "data.num_eval=8", "data.maze_size=10", "data.seq_len=100",
                     "data.maze_min_path_len=12", f"run_dir={tmp_path / 'run'}"]
    cmd = [sys.executable, os.path.join(root, "scripts", "train.py"), "--config", os.path.join(root, "configs", "maze_hard.yaml")]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "training done: step 2" in out.stdout + out.stderr and "held-out exact accuracy" in out.stdout + out.stderr

    # infer takes the question text and returns the grid with the path marked, as predict's tokens decode
    import trm_jax
    from trm_jax.evaluation import dataset_for
    from trm_jax.tasks.maze.mazes import maze_texts

    p = trm_jax.load(tmp_path / "run")
    ds = dataset_for(p)
    questions = maze_texts(ds.inputs[:3, :100])
    want = maze_texts(np.asarray(trm_jax.predict(p.model, p.params, ds.inputs[:3]).tokens)[:, :100])
    assert trm_jax.infer(p, questions) == want and trm_jax.infer(p, questions[0]) == want[0]
    with pytest.raises(TRMError, match="not in the maze charset"):
        trm_jax.infer(p, questions[0].replace("#", "x"))


def test_official_recipe_configs_load_with_their_numbers():
    import os

    from trm_jax.config import load_config

    root = os.path.join(REPO, "configs")
    mlp = load_config(os.path.join(root, "sudoku_extreme_mlp.yaml"))
    att = load_config(os.path.join(root, "sudoku_extreme_att.yaml"))
    maze = load_config(os.path.join(root, "maze_hard.yaml"))
    for cfg in (mlp, att, maze):
        m, t = cfg.model, cfg.training
        assert (m.variant, m.network, m.dim, m.mlp_expansion, m.depth, m.num_refinement_blocks) == \
            ("official", "transformer", 512, 4.0, 2, 3)
        assert (m.puzzle_emb_ndim, m.puzzle_emb_len, m.max_recursion_depth, m.loss, m.halt_loss_weight) == \
            (512, 16, 16, "stablemax", 0.5)
        assert (t.optimizer, t.learning_rate, t.beta1, t.beta2, t.weight_decay, t.batch_size) == \
            ("adam_atan2", 1e-4, 0.9, 0.95, 1.0, 768)
        assert (t.puzzle_emb_lr, t.puzzle_emb_weight_decay, t.ema_decay, t.lr_schedule, t.warmup_steps) == \
            (1e-4, 1.0, 0.999, "constant", 2000)
    assert mlp.model.mlp_t and mlp.model.pos_encodings == "none" and mlp.model.num_latent_refinements == 6
    assert not att.model.mlp_t and att.model.pos_encodings == "rope" and att.model.num_latent_refinements == 6
    assert (mlp.data.max_train_rows, get_task(mlp).options.num_aug, mlp.data.seq_len) == (1000, 1000, 81)
    assert maze.model.num_latent_refinements == 4 and (maze.data.task, maze.data.seq_len) == ("maze", 900)
