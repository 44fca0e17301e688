"""benchmarks.gpu_suite at tiny shapes (--quick) on the CPU: every part runs the Trainer's step and predict
and reports its numbers, its batch halved to fit a memory limit; the FLOP view of each recipe is its
model's; a part that cannot run reports why and the suite goes on. No timing assertions."""

import functools
import json

import pytest
from _benchmark_runs import printed

from benchmarks.flops import device_peak, train_step_flops
from benchmarks.gpu_suite import RECIPES, main, measure, recipe_shapes
from benchmarks.harness import BenchConfig


# smaller than --quick's own shapes (the batch stays 16): the code path, at the least compile and run time
TINY = dict(dim=16, seq_len=8, rows=8, num_latent_refinements=1, steps=1)


@pytest.fixture()
def quick_suite(once, tmp_path_factory):
    """`python -m benchmarks.gpu_suite --quick` in bfloat16 (time limits for a loaded 2-core machine)."""
    def run():
        path = tmp_path_factory.mktemp("gpu_suite") / "gpu.json"
        res = printed(functools.partial(main, quick_shapes=TINY),
                      ["--quick", "--dtypes", "bfloat16", "--budget-s", "1200", "--part-s", "500",
                       "--json", str(path)])
        return dict(res, json=json.loads(path.read_text()))
    return once("gpu_suite", run)


def test_quick_suite_reports_train_and_predict_for_each_part(quick_suite):
    results, out = quick_suite["result"], quick_suite["out"]
    assert [r["recipe"] for r in results] == list(RECIPES) and quick_suite["json"] == results
    for r in results:
        assert "error" not in r, r
        assert r["dtype"] == "bfloat16" and r["batch_size"] == r["config_batch_size"] == 16
        assert r["step_ms"] > 0
        assert r["tokens_per_sec"] == pytest.approx(r["batch_size"] * r["seq_len"] / r["step_ms"] * 1e3)
        assert r["predict_puzzles_per_s"] > 0 and r["step_gflop"] > 0
    assert "train step" in out and "predict 2 steps" in out and "MFU bf16" in out


def test_batch_is_halved_to_fit_the_memory_limit(capsys):
    """One part in this process, under a memory limit no batch fits."""
    r = measure(dict(recipe="sudoku_extreme_mlp", dtype="float32", quick=True, quick_shapes=TINY,
                     memory_limit_gb=0.0001))
    assert r["batch_size"] == 4 and r["config_batch_size"] == 16 and r["step_ms"] > 0  # 16 -> 8 -> 4, the floor
    assert capsys.readouterr().out.count("halving it") == 2


def test_a_part_without_time_is_skipped_and_one_out_of_time_is_reported(capsys):
    skipped = main(["--quick", "--recipes", "arc_agi_1", "--dtypes", "float32", "--budget-s", "1"])
    assert "skipped" in skipped[0]["error"]
    failed = main(["--quick", "--recipes", "arc_agi_1", "--dtypes", "float32", "--part-s", "0.5", "--min-part-s", "0"])
    assert "killed" in failed[0]["error"]
    assert "FAILED (killed after" in capsys.readouterr().out


def test_recipe_flops_view_is_the_recipe_model():
    sudoku, arc = (recipe_shapes(r, quick=False) for r in RECIPES)
    bc = BenchConfig.from_model(sudoku["model"], sudoku["seq_len"], sudoku["batch_size"])
    assert (bc.mlp_t, bc.dim, bc.num_latent_refinements, bc.num_refinement_blocks, bc.batch_size, bc.seq_len) == (
        True, 512, 6, 3, 768, 81 + 16)
    bc_arc = BenchConfig.from_model(arc["model"], arc["seq_len"], arc["batch_size"])
    assert (bc_arc.mlp_t, bc_arc.heads, bc_arc.num_latent_refinements, bc_arc.seq_len) == (False, 8, 4, 900 + 16)
    assert arc["model"].num_puzzle_identifiers > 700_000
    assert train_step_flops(bc_arc) > 5 * train_step_flops(bc)  # 9x the positions, attention on top
    assert device_peak("NVIDIA H200", "bfloat16") == 989e12 and device_peak("cpu", "bfloat16") is None
