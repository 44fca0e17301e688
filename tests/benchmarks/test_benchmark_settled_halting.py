"""benchmarks.settled_halting: the issue's four targets, judged from the full-depth and settled rows."""

from benchmarks.settled_halting import checks


def test_each_target_is_judged_on_its_own_row():
    full = dict(exact=0.90, steps=32.0)
    ok = dict(exact=0.895, steps=6.0, settled=0.8, settled_valid=0.995)
    assert all(checks(full, ok, depth=32).values())
    assert checks(full, ok, depth=8)["at_most_half_the_steps"] is False  # 6 > 8 / 2
    assert checks(full, dict(ok, exact=0.88), 32)["within_0.01_of_full"] is False
    assert checks(full, dict(ok, exact=0.91), 32)["within_0.01_of_full"] is True  # better than full also counts
    assert checks(full, dict(ok, settled_valid=0.98), 32)["settled_valid_>=0.99"] is False
    assert checks(full, dict(ok, settled=0.49), 32)["half_settled"] is False
