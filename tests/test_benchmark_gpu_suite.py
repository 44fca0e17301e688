"""benchmarks.gpu_suite at tiny shapes (--quick) on the CPU: every part runs the Trainer's step and predict
and reports its numbers; the step's batch is halved to fit a memory limit; the FLOP view of each recipe
is its model's; a part that cannot run reports why and the suite goes on. No timing assertions."""

import json

import pytest

from benchmarks.flops import train_step_flops
from benchmarks.gpu_suite import RECIPES, bench_config, device_peaks, main, recipe_shapes


def test_quick_suite_reports_train_and_predict_for_each_part(tmp_path, capsys):
    path = tmp_path / "gpu.json"
    results = main(["--quick", "--dtypes", "bfloat16", "--json", str(path)])
    out = capsys.readouterr().out
    assert [r["recipe"] for r in results] == list(RECIPES) and json.loads(path.read_text()) == results
    for r in results:
        assert "error" not in r, r
        assert r["dtype"] == "bfloat16" and r["batch"] == r["config_batch"] == 16
        assert r["step_ms"] > 0 and r["tokens_per_s"] == pytest.approx(r["batch"] * r["seq_len"] / r["step_ms"] * 1e3)
        assert r["predict_puzzles_per_s"] > 0 and r["step_gflop"] > 0
    assert "train step" in out and "predict 2 steps" in out and "MFU bf16" in out


def test_batch_is_halved_to_fit_the_memory_limit_and_a_failed_part_is_reported(capsys):
    results = main(["--quick", "--recipes", "sudoku_extreme_mlp", "--dtypes", "float32,bfloat16",
                    "--memory-limit-gb", "0.0001", "--part-s", "60"])
    assert results[0]["batch"] == 4 and results[0]["config_batch"] == 16  # 16 -> 8 -> 4, the floor
    assert "halving it" in capsys.readouterr().out
    skipped = main(["--quick", "--recipes", "arc_agi_1", "--dtypes", "float32", "--budget-s", "1"])
    assert "skipped" in skipped[0]["error"]
    failed = main(["--quick", "--recipes", "arc_agi_1", "--dtypes", "float32", "--part-s", "0.5", "--min-part-s", "0"])
    assert "killed" in failed[0]["error"]


def test_recipe_flops_view_is_the_recipe_model():
    sudoku, arc = (recipe_shapes(r, quick=False) for r in RECIPES)
    bc = bench_config(sudoku["model"], sudoku["seq_len"], sudoku["batch"])
    assert (bc.mlp_t, bc.dim, bc.n, bc.T, bc.batch, bc.seq_len) == (True, 512, 6, 3, 768, 81 + 16)
    bc_arc = bench_config(arc["model"], arc["seq_len"], arc["batch"])
    assert (bc_arc.mlp_t, bc_arc.heads, bc_arc.n, bc_arc.seq_len) == (False, 8, 4, 900 + 16)
    assert arc["model"].num_puzzle_identifiers > 700_000
    assert train_step_flops(bc_arc) > 5 * train_step_flops(bc)  # 9x the positions, attention on top
    assert device_peaks("NVIDIA H200")["bfloat16"] == 989e12 and device_peaks("cpu") == {}
