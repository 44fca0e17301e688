import logging

import pytest

from trm_jax.training.run_dir import RunLog


@pytest.mark.parametrize("close_order", [(0, 1), (1, 0)])
def test_overlapping_run_logs_forward_each_record_once_and_restore_the_loggers(tmp_path, caplog, close_order):
    pkg = logging.getLogger("trm_jax")
    before = (pkg.level, pkg.propagate, list(pkg.handlers))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    logs = [RunLog(str(tmp_path / d), 0, progress_bar=False) for d in ("a", "b")]
    with caplog.at_level(logging.WARNING):
        logging.getLogger("trm_jax.training.monitor").warning("disk nearly full")
    assert caplog.text.count("disk nearly full") == 1  # console: once, however many runs are open
    for i in close_order:
        logs[i].close()
    logs[0].close()  # idempotent
    assert (pkg.level, pkg.propagate, list(pkg.handlers)) == before
    for d in ("a", "b"):
        assert "disk nearly full" in (tmp_path / d / "train.log").read_text()
