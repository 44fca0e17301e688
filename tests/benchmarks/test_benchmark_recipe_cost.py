"""benchmarks.recipe_cost: each stage of a config timed on its own, its time per step times its length."""

import yaml

from benchmarks.recipe_cost import project, stage_lengths

TINY = dict(model=dict(dim=16, depth=1, num_latent_refinements=1, num_refinement_blocks=2, max_recursion_depth=2),
            data=dict(task="code", seq_len=32, num_train=64, num_eval=8, code_num_facts=16),
            training=dict(batch_size=4, warmup_steps=1),
            curriculum=dict(stages=[dict(steps=30), dict(steps=70, num_refinement_blocks=3)]))


def test_each_stage_is_timed_and_projected_to_its_length(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert stage_lengths(str(path)) == [30, 70]
    res = project(str(path), 4, str(tmp_path))
    assert [r["steps"] for r in res["stages"]] == [30, 70]
    for r in res["stages"]:
        assert r["s_per_step"] > 0 and r["projected_s"] == r["steps"] * r["s_per_step"]
    assert res["projected_s"] == sum(r["projected_s"] for r in res["stages"])
