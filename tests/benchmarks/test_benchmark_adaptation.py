"""benchmarks.adaptation: its FLOP count of an adaptation step against the train-step formula."""

import numpy as np
import pytest

from benchmarks.adaptation import ARC_SEQ_LEN, arc_model, step_flops
from benchmarks.flops import head_flops, net_matmuls, train_step_flops
from benchmarks.harness import BenchConfig


def test_adaptation_flops_match_the_train_step_formula():
    """A step with weight gradients counts as benchmarks.flops counts a train step; an embeddings-only step
    drops exactly the weight-gradient products of the weight matmuls (and of the output head)."""
    _, cfg = arc_model(128, "float32", 4)
    bc = BenchConfig.from_model(cfg, ARC_SEQ_LEN, 8)
    assert (bc.network, bc.seq_len, bc.num_heads) == ("transformer", 900 + cfg.puzzle_emb_len, cfg.num_heads)
    assert step_flops(cfg, 8, dense=True) == pytest.approx(train_step_flops(bc))
    weights = sum(2 * np.prod(a) * b[-1] for name, _, a, b in net_matmuls(bc)
                  if not any(k in name for k in ("scores", "weighted sum")))
    skipped = (cfg.num_latent_refinements + 1) * weights + head_flops(bc)
    assert step_flops(cfg, 8, dense=False) == pytest.approx(train_step_flops(bc) - skipped)


def test_the_families_of_the_accuracy_modes():
    """The permutation family is the tests' toy family (tests/_adapt_family.py) draw for draw; the lookup family's
    rules are lookup tables over 8 symbols (repeated images, so not permutations), one per identifier, and every
    label is its identifier's table applied to the input."""
    import _adapt_family as toy

    from benchmarks.adaptation import FAMILIES

    perm, lookup = FAMILIES["permutation"], FAMILIES["lookup"]
    assert (perm.vocab, perm.seq_len) == (toy.VOCAB, toy.SEQ_LEN)
    ids = range(1, 9)
    for a, b in zip(perm.maps(ids, seed=0).values(), toy.permutations(ids, seed=0).values()):
        np.testing.assert_array_equal(a, b)
    for key, value in perm.samples(perm.maps(ids, seed=0), 4, seed=1).items():
        np.testing.assert_array_equal(value, toy.samples(toy.permutations(ids, seed=0), 4, seed=1)[key])
    assert perm.model(9) == toy.model(9)

    maps = lookup.maps(range(1, 101), seed=0)
    tables = np.stack(list(maps.values()))
    assert tables.shape == (100, 9) and (tables[:, 0] == 0).all()
    assert ((tables[:, 1:] >= 1) & (tables[:, 1:] <= 8)).all()
    assert len({t.tobytes() for t in tables}) == 100  # a rule of its own per identifier
    assert np.mean([len(set(t[1:])) < 8 for t in tables]) > 0.9  # images repeat: lookup tables, not permutations
    data = lookup.samples(maps, 3, seed=2)
    for x, y, pid in zip(data["inputs"], data["labels"], data["puzzle_ids"]):
        np.testing.assert_array_equal(y, maps[int(pid)][x])


def test_accuracy_mode_runs_and_writes_its_table(tmp_path, capsys):
    """`python -m benchmarks.adaptation rows|replay` shrunk: a run trained on 3 identifiers, one adaptation of
    every weight with replay from random rows; one JSON record per variant with both accuracies."""
    import json

    from benchmarks.adaptation import main

    out = tmp_path / "rows.json"
    variant = "train=all,replay=0.5,steps=2,init=random"
    main(["rows", "--family", "lookup", "--identifiers", "3", "--train-steps", "3", "--train-batch", "8",
          "--per-identifier", "4", "--new", "2", "--demos", "2", "--variants", variant, "--json", str(out)])
    (record,) = json.loads(out.read_text())
    assert (record["family"], record["identifiers"], record["variant"]) == ("lookup", 3, variant)
    for key in ("new_exact", "new_token", "old_exact", "old_token"):
        assert 0.0 <= record[key] <= 1.0
    assert "lookup, 3 trained identifiers" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown variant key 'rate'"):
        main(["replay", "--variants", "rate=1"])
