"""`python -m benchmarks.halting_check --quick`: the rows it prints from a short run's final weights."""

from benchmarks import halting_check
from benchmarks.time_to_accuracy import QUICK
from trm_jax.models import NO_EARLY_HALT


def test_quick_halting_check_rows(tmp_path, capsys):
    out = halting_check.main(["--quick", "--json", str(tmp_path / "check.json")])
    rows = {(r["weights"], r["puzzles"], r["threshold"]): r for r in out["rows"]}
    weights = ["ema", "live", "ema, live halting head", "live, ema halting head"]
    assert {w for w, _, _ in rows} == set(weights) and len(rows) == 4 * 3 + 2 * 3  # train puzzles: ema, live only
    max_depth = QUICK.max_recursion_depth
    for (w, split, threshold), r in rows.items():
        assert 0 <= r["exact"] <= 1 and 1 <= r["depth"] <= max_depth
        if threshold == NO_EARLY_HALT:
            assert r["depth"] == max_depth
    # with no early halting the halting head decides nothing: swapping it leaves the answers as they were
    assert rows["ema, live halting head", "held-out", NO_EARLY_HALT]["exact"] == rows["ema", "held-out", NO_EARLY_HALT]["exact"]
    assert rows["live, ema halting head", "held-out", NO_EARLY_HALT]["exact"] == rows["live", "held-out", NO_EARLY_HALT]["exact"]
    # the run's own last full-depth point is the EMA weights at full depth on the held-out puzzles
    assert out["run"]["curve"][-1]["exact_accuracy_full_depth"] == rows["ema", "held-out", NO_EARLY_HALT]["exact"]
    assert "full depth" in capsys.readouterr().out and (tmp_path / "check.json").exists()
