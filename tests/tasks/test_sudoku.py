"""Sudoku: generated puzzles valid and unique, augmentations, CSV reader, text I/O, cache."""

import numpy as np
import pytest

from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks import sudoku as S
from trm_jax.tasks.sudoku.dataset import make_sudoku_dataset
from _paths import REPO

# A known puzzle (Wikipedia's example) and its solution.
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def _grid_ok(p, s):
    return S.is_valid_solution(s) and S.matches_givens(p, s) and S.count_solutions(p) == 1


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_generated_puzzles_valid_and_unique(difficulty):
    p, s = S.generate_sudoku(40, seed=7, difficulty=difficulty)
    assert p.shape == s.shape == (40, 81) and p.dtype == np.int8
    for puzzle, solution in zip(p, s):
        # the reference recursive solver is independent of the batched one used to generate
        assert _grid_ok(puzzle, solution)
        assert (S.solve_grid(puzzle) == solution).all()
    givens = (p > 0).sum(axis=1)
    if difficulty < 1.0:
        assert (givens == S.target_givens(difficulty)).all()
    else:
        assert givens.max() <= 30 and givens.mean() < 27  # dug to minimal puzzles
        for puzzle in p[:5]:  # minimal: removing any given breaks uniqueness
            for cell in np.flatnonzero(puzzle)[:6]:
                q = puzzle.copy()
                q[cell] = 0
                assert S.count_solutions(q) == 2


def test_generation_is_seeded():
    a = S.generate_sudoku(8, seed=3, difficulty=0.6)
    b = S.generate_sudoku(8, seed=3, difficulty=0.6)
    c = S.generate_sudoku(8, seed=4, difficulty=0.6)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()


def test_batched_solver_matches_reference():
    p, s = S.generate_sudoku(20, seed=11, difficulty=0.9)
    sol, counts, guesses = S.solve_batch(np.concatenate([p, S.text_to_sudoku(PUZZLE)[None]]))
    assert (counts == 1).all() and (sol[:-1] == s).all() and S.sudoku_to_text(sol[-1]) == SOLUTION
    assert guesses.min() >= 0
    ambiguous = p[:3].copy()
    ambiguous[:, :] = 0  # the empty grid has many solutions
    assert (S.count_solutions_batch(ambiguous) == 2).all() and (S.count_solutions_batch(ambiguous, 5) == 5).all()
    broken = S.text_to_sudoku("11" + "." * 79)[None]
    assert S.count_solutions_batch(broken)[0] == 0 and S.count_solutions(broken[0]) == 0


def test_batched_counts_agree_with_reference_on_perturbed_puzzles():
    # Unique, ambiguous (a given removed) and often unsolvable (a given changed) puzzles.
    rng = np.random.default_rng(4)
    p, s = S.generate_sudoku(30, seed=9, difficulty=1.0)
    variants = [p]
    fewer = p.copy()
    fewer[np.arange(30), [rng.choice(np.flatnonzero(x)) for x in p]] = 0
    variants.append(fewer)
    changed = p.copy()
    for row in changed:
        cell = rng.choice(np.flatnonzero(row))
        row[cell] = row[cell] % 9 + 1
    variants.append(changed)
    grids = np.concatenate(variants)
    reference = [S.count_solutions(g) for g in grids]
    assert (S.count_solutions_batch(grids) == reference).all()
    assert set(reference) == {0, 1, 2}


def test_augmentations_preserve_validity():
    p, s = S.generate_sudoku(10, seed=5, difficulty=0.7)
    rng = np.random.default_rng(0)
    for _ in range(3):
        ap, as_ = S.augment_sudoku(p, s, rng)
        assert not (ap == p).all()
        for puzzle, solution, orig in zip(ap, as_, p):
            assert _grid_ok(puzzle, solution)
            assert (puzzle > 0).sum() == (orig > 0).sum()
    # every transform is a bijection on cells, and transposes do occur
    perms = S.random_cell_permutations(200, rng)
    assert (np.sort(perms, axis=1) == np.arange(81)).all()
    # without a transpose, a new row's cells come from one source row; both kinds occur
    transposed = perms[:, 0] // 9 != perms[:, 1] // 9
    assert 0 < transposed.sum() < 200
    assert len({tuple(p_) for p_ in perms}) == 200
    assert all(S.is_valid_solution(s[0][perm]) for perm in perms)


def test_token_augmenter_matches_grid_augmentation():
    tok = load_tokenizer("grid")[0]
    p, s = S.generate_sudoku(6, seed=2, difficulty=0.5)
    ds = make_sudoku_dataset(p, s, tok, seq_len=83, augment=True)
    inputs, labels = ds.augment(ds.inputs, ds.labels, np.random.default_rng(1))
    assert (inputs[:, 81:] == tok.pad_token_id).all() and (labels[:, 81:] == -100).all()
    for x, y in zip(inputs, labels):
        puzzle, solution = S.text_to_sudoku(tok.decode(x[:81])), S.text_to_sudoku(tok.decode(y[:81]))
        assert _grid_ok(puzzle, solution)


def test_text_io():
    g = S.text_to_sudoku(PUZZLE)
    assert g.shape == (81,) and g[2] == 0 and g[0] == 5
    assert S.sudoku_to_text(g) == PUZZLE
    assert S.sudoku_to_text(S.text_to_sudoku(PUZZLE.replace(".", "0"))) == PUZZLE
    assert S.text_to_sudoku(S.format_sudoku(g)).tolist() == g.tolist()  # pretty form parses back
    assert S.grids_to_texts(np.stack([g, g])) == [PUZZLE, PUZZLE]
    assert S.solve_sudoku_string(PUZZLE) == SOLUTION
    with pytest.raises(TRMError, match="81 cells, got 80"):
        S.text_to_sudoku(PUZZLE[:-1])
    with pytest.raises(TRMError, match="invalid Sudoku character 'x'"):
        S.text_to_sudoku("x" + PUZZLE[1:])
    with pytest.raises(TRMError, match="no solution"):
        S.solve_sudoku_string("55" + PUZZLE[2:])


def test_shipped_csv_sample():
    csv = S.read_sudoku_csv(S.SAMPLE_CSV)
    assert csv.puzzles.shape == (100, 81) and len(csv.sources) == 100
    assert csv.ratings.dtype == np.float32 and csv.ratings.max() > 0
    for p, s in zip(csv.puzzles, csv.solutions):
        assert _grid_ok(p, s)
    d = S.rating_difficulty(csv.ratings)
    assert ((0 <= d) & (d <= 1)).all()


def test_csv_round_trip_and_errors(tmp_path):
    path = tmp_path / "ok.csv"
    S.write_sudoku_csv(str(path), [S.text_to_sudoku(PUZZLE)], [S.text_to_sudoku(SOLUTION)], [12])
    csv = S.read_sudoku_csv(str(path))
    assert S.sudoku_to_text(csv.puzzles[0]) == PUZZLE and csv.ratings[0] == 12

    def bad(rows, match, header="source,question,answer,rating"):
        p = tmp_path / "bad.csv"
        p.write_text("\n".join([header] + rows) + "\n")
        with pytest.raises(TRMError, match=match):
            S.read_sudoku_csv(str(p))

    good = f"x,{PUZZLE},{SOLUTION},0"
    bad([good, f"x,{PUZZLE[:-1]},{SOLUTION},0"], r"bad.csv:3: column 'question' must have 81 characters")
    bad([good, good, f"x,{PUZZLE},{SOLUTION[:-1]}1,0"], r"bad.csv:4: answer is not a valid Sudoku solution")
    bad([f"x,{'5' + PUZZLE[1:]},{SOLUTION},0".replace(PUZZLE[:1], "6", 1)], r"bad.csv:2: answer contradicts")
    bad([f"x,{PUZZLE},{SOLUTION}"], r"bad.csv:2: expected 4 columns")
    bad([f"x,{PUZZLE},{SOLUTION},hard"], r"bad.csv:2: rating must be a number")
    bad([good], r"bad.csv:1: expected the header", header="a,b,c,d")
    bad([f"x,{PUZZLE[:-1]}?,{SOLUTION},0"], r"bad.csv:2: question may only hold")
    with pytest.raises(TRMError, match="not found"):
        S.read_sudoku_csv(str(tmp_path / "missing.csv"))


def test_cache_round_trip(tmp_path, monkeypatch):
    a = S.load_or_generate_sudoku(12, 1, 0.4, str(tmp_path), progress=False)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "n12_s1_d0.4000" in files[0].name

    def no_generation(*args, **kwargs):
        raise AssertionError("should have loaded the cache")

    monkeypatch.setattr(S, "generate_sudoku", no_generation)
    b = S.load_or_generate_sudoku(12, 1, 0.4, str(tmp_path), progress=False)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    with np.load(files[0], allow_pickle=False) as f:  # plain arrays, no pickle
        assert set(f.files) == {"puzzles", "solutions"}


def test_official_train_set_augmentations_stay_valid():
    p, s = S.generate_sudoku(6, seed=4, difficulty=0.6)
    P, Q, source = S.with_augmented_copies(p, s, num_aug=30, seed=1)
    assert P.shape == Q.shape == (6 * 31, 81) and source.tolist() == np.repeat(np.arange(6), 31).tolist()
    assert (P[::31] == p).all() and (Q[::31] == s).all()  # the official order: original first
    for puzzle, solution, src in zip(P, Q, source):
        # independent check with the reference solver: valid, keeps the givens, still the unique solution
        assert S.is_valid_solution(solution) and S.matches_givens(puzzle, solution)
        assert (puzzle > 0).sum() == (p[src] > 0).sum()
    for puzzle, solution in zip(P[1:31:6], Q[1:31:6]):
        assert S.count_solutions(puzzle) == 1 and (S.solve_grid(puzzle) == solution).all()
    assert len({bytes(x) for x in P[:31]}) == 31  # the transforms differ
    again = S.with_augmented_copies(p, s, num_aug=30, seed=1)
    assert (again[0] == P).all() and not (S.with_augmented_copies(p, s, 30, seed=2)[0] == P).all()


def test_build_datasets_official_sudoku_extreme_construction(tmp_path):
    from trm_jax.config import load_config
    from trm_jax.tasks import get_task

    path = str(tmp_path / "extreme.csv")
    p, s = S.generate_sudoku(30, seed=2, difficulty=0.7)
    S.write_sudoku_csv(path, p, s)
    test_path = str(tmp_path / "test.csv")
    S.write_sudoku_csv(test_path, p[:7], s[:7])
    cfg = load_config(None, ["data.task=sudoku", f"data.train_path={path}", f"data.eval_path={test_path}",
                             "data.max_train_rows=10", "data.num_aug=4", "data.augment=false", "data.seq_len=81"])
    tok = load_tokenizer("grid")[0]
    train, ev = get_task(cfg).datasets(tok)
    assert len(train) == 10 * 5 and len(ev) == 7  # eval set untouched
    assert train.augment is None and len(train.texts) == 50
    originals = {bytes(x) for x in make_sudoku_dataset(p, s, tok).inputs}
    assert sum(bytes(x) in originals for x in train.inputs) == 10  # one original per group of 5
    for x, y in zip(train.inputs, train.labels):
        puzzle, solution = S.text_to_sudoku(tok.decode(x)), S.text_to_sudoku(tok.decode(y))
        assert S.is_valid_solution(solution) and S.matches_givens(puzzle, solution)


def test_sudoku_extreme_mlp_config_trains_shrunk(tmp_path):
    import os

    from trm_jax.config import load_config
    from trm_jax.training import create_trainer

    path = os.path.join(REPO, "configs", "sudoku_extreme_mlp.yaml")
    cfg = load_config(path, [
        "model.dim=32", "model.depth=1", "model.num_latent_refinements=1", "model.num_refinement_blocks=2",
        "model.max_recursion_depth=2", "model.puzzle_emb_ndim=32", "model.dtype=float32", "data.num_train=8",
        "data.max_train_rows=8", "data.num_aug=3", "data.num_eval=8", "data.difficulty=0.3",
        f"data.cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "training.batch_size=8",
        "training.steps=2", "training.eval_every=2", "training.warmup_steps=1", "training.log_every=1",
        "training.checkpoint_every=2", "training.eval_batch_size=8", "training.progress_bar=false"])
    result = create_trainer(cfg).train()
    assert result.step == 2 and np.isfinite(result.metrics["loss"]) and result.eval["num_samples"] == 8
