"""Curriculum: stage resolution, parameter embedding, and a run with a width + sequence growth."""

import jax
import numpy as np
import pytest
from _train_helpers import sigterm_at_step, tiny_config, tiny_trainer

from trm_jax.config import CurriculumStage, TRMConfig
from trm_jax.errors import ConfigError
from trm_jax.models import init_params, make_model
from trm_jax.training import CurriculumScheduler, embed_params, read_metrics
from trm_jax.training import distributed as dist
from trm_jax.training.stages import model_shape, stage_config


def cfg_with(stages, **top):
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in top.items()}
    raw["curriculum"] = {"stages": stages}
    raw.setdefault("training", {}).update(batch_size=16, learning_rate=1e-3)
    raw.setdefault("data", {}).update(seq_len=32, difficulty=0.2)
    return TRMConfig.from_dict(raw)


def test_stages_inherit_and_resolve_epochs():
    cfg = cfg_with([{"steps": 10, "difficulty": 0.1},
                    {"epochs": 2, "seq_len": 48, "batch_size": 32},
                    {"steps": 5, "dim": 128, "learning_rate": 3e-4}])
    s = CurriculumScheduler(cfg, epoch_size=100)
    a, b, c = s.stages
    assert (a.start, a.steps, a.seq_len, a.batch_size, a.dim, a.difficulty, a.learning_rate) == \
        (0, 10, 32, 16, 64, 0.1, 1e-3)
    assert (b.start, b.steps, b.seq_len, b.batch_size, b.difficulty) == (10, 7, 48, 32, 0.1)  # ceil(2*100/32)
    assert (c.start, c.steps, c.seq_len, c.batch_size, c.dim, c.learning_rate) == (17, 5, 48, 32, 128, 3e-4)
    assert s.total_steps == 22
    assert [s.stage_at(i).index for i in (0, 9, 10, 16, 17, 21, 99)] == [0, 0, 1, 1, 2, 2, 2]
    assert s.batch_keys[1] == "curriculum.stages[1].batch_size"
    # the model's shape per stage, without the data (what trm_jax.load resolves): the last stage by default
    assert [model_shape(cfg, i) for i in (0, 1, 2)] == [(32, 64), (48, 64), (48, 128)] and model_shape(cfg) == (48, 128)


def test_no_stages_is_one_stage_from_base_config():
    s = CurriculumScheduler(TRMConfig.from_dict({"training": {"steps": 7}}))
    assert len(s) == 1 and s.total_steps == 7 and s.stages[0].dim == 64 and s.batch_keys == ["training.batch_size"]


def test_bad_stages_are_config_errors():
    with pytest.raises(ConfigError, match=r"curriculum.stages\[1\].dim.*only grow"):
        CurriculumScheduler(cfg_with([{"steps": 1}, {"steps": 1, "dim": 32}]))
    with pytest.raises(ConfigError, match=r"stages\[0\].epochs.*training set size"):
        CurriculumScheduler(cfg_with([{"epochs": 1}]))
    with pytest.raises(ConfigError, match=r"stages\[0\].*exactly one of 'steps' or 'epochs'"):
        cfg_with([{"steps": 1, "epochs": 1}])
    assert CurriculumStage  # re-exported config dataclass


def test_embed_params_copies_leading_block_into_wider_mixer():
    from trm_jax.config import ModelConfig
    small = make_model(ModelConfig(dim=16, depth=1, num_register_tokens=2), 12, 8)
    big = make_model(ModelConfig(dim=24, depth=1, num_register_tokens=2), 12, 12)
    p_small = jax.device_get(init_params(small, jax.random.PRNGKey(0)))
    p_big = jax.device_get(init_params(big, jax.random.PRNGKey(1)))
    out = embed_params(p_small, p_big)
    tm_s, tm_b, tm_o = (p["network"]["block0_token_mixing"]["in_kernel"] for p in (p_small, p_big, out))
    assert tm_s.shape == (10, 64) and tm_o.shape == (14, 96)  # (registers + seq_len, 4 * dim)
    np.testing.assert_array_equal(tm_o[:10, :64], tm_s)  # trained block in place
    np.testing.assert_array_equal(tm_o[10:], tm_b[10:])  # new positions: fresh init
    np.testing.assert_array_equal(tm_o[:, 64:], tm_b[:, 64:])
    emb = out["input_embed"]["embedding"]
    np.testing.assert_array_equal(emb[:, :16], p_small["input_embed"]["embedding"])
    np.testing.assert_array_equal(emb[:, 16:], p_big["input_embed"]["embedding"][:, 16:])
    with pytest.raises(ConfigError, match="structure"):
        embed_params({"a": np.zeros(2)}, {"b": np.zeros(2)})


def test_curriculum_run_grows_dim_and_seq_len(tmp_path):
    # stage 0 has the settings of test_training_resume (8 steps in all, dropout): its compilation is cached
    stages = [{"steps": 3, "difficulty": 0.0},
              {"steps": 5, "dim": 24, "seq_len": 12, "batch_size": 4, "learning_rate": 1e-3, "difficulty": 1.0}]
    trainer = tiny_trainer(tiny_config(tmp_path, curriculum={"stages": stages}, model=dict(dropout=0.1)))

    # white-box: run stage 0, then check the transition itself
    run = trainer.run
    run.enter_first_stage()
    trainer._loop(0, 3, None)
    before = dist.unreplicate(run.state)
    run.transition(run.scheduler.stages[1])
    after = dist.unreplicate(run.state)
    assert int(after.step) == 3 and trainer.stage.model.dim == 24 and trainer.stage.spec.seq_len == 12
    tm0 = before.params["network"]["block0_token_mixing"]["in_kernel"]
    tm1 = after.params["network"]["block0_token_mixing"]["in_kernel"]
    assert tm0.shape == (8, 64) and tm1.shape == (12, 96)
    np.testing.assert_array_equal(tm1[:8, :64], tm0)
    np.testing.assert_array_equal(after.ema_params["to_pred"]["kernel"][:16], before.ema_params["to_pred"]["kernel"])
    counts = [x for x in jax.tree.leaves(after.opt_state) if np.ndim(x) == 0]
    assert counts and all(int(c) == 0 for c in counts)  # optimizer state rebuilt for the new shapes
    carry = dist.unshard(run.carry)
    assert carry.inputs.shape == (4, 12) and carry.halted.all()  # fresh slots at the new shapes
    summary, interrupted = trainer._loop(3, 8, None)
    assert not interrupted and np.isfinite(summary["loss"])
    res = trainer.evaluate()
    assert 0 <= res["exact_accuracy"] <= 1 and res["num_samples"] == 32
    trainer.close()

    recs = read_metrics(tmp_path / "metrics.jsonl", split=None)
    tr = [r for r in recs if r["split"] == "train"]
    assert [r["stage"] for r in tr] == [0, 0, 0, 1, 1, 1, 1, 1]
    assert [r["difficulty"] for r in tr] == [0.0] * 3 + [1.0] * 5
    cur = [r for r in recs if r["split"] == "curriculum"]
    assert len(cur) == 1 and cur[0]["step"] == 3 and cur[0]["dim"] == 24 and "embedded" in cur[0]["note"]
    assert "stage 0 -> 1" in (tmp_path / "train.log").read_text()


def test_batch_key_named_when_stage_batch_does_not_split(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda: 3)
    stages = [{"steps": 2, "batch_size": 6}, {"steps": 2, "batch_size": 8}]
    with pytest.raises(ConfigError, match=r"curriculum.stages\[1\].batch_size.*not divisible by the 3 devices"):
        tiny_trainer(tiny_config(tmp_path, curriculum={"stages": stages}))


def test_stages_set_recursion_depth_and_load_resolves_the_last():
    cfg = cfg_with([{"steps": 2}, {"steps": 2, "num_refinement_blocks": 4},
                    {"steps": 2, "num_latent_refinements": 3, "dim": 96}],
                   model={"num_refinement_blocks": 2, "num_latent_refinements": 1})
    s = CurriculumScheduler(cfg)
    assert [(x.num_refinement_blocks, x.num_latent_refinements) for x in s.stages] == [(2, 1), (4, 1), (4, 3)]
    assert "T=4, n=3" in s.stages[2].describe()
    last = stage_config(cfg)  # what trm_jax.load builds the model from (default: the last stage)
    assert (last.model.num_refinement_blocks, last.model.num_latent_refinements, last.model.dim,
            last.data.seq_len) == (4, 3, 96, 32)
    first = stage_config(cfg, 0)
    assert (first.model.num_refinement_blocks, first.model.num_latent_refinements, first.model.dim) == (2, 1, 64)


# final-step supervision with T and n growing at step 2; SIGTERM at step 3 (inside the deeper stage)
DEPTH_STAGES = [{"steps": 2}, {"steps": 3, "num_refinement_blocks": 3, "num_latent_refinements": 2}]
DEPTH_SECTIONS = dict(curriculum={"stages": DEPTH_STAGES}, training=dict(supervision="final", eval_every=1000),
                      model=dict(num_refinement_blocks=2, num_latent_refinements=1))


def test_depth_stages_resume_in_between_matches_uninterrupted_run(tmp_path):
    from _train_helpers import train_losses

    from trm_jax.inference import load

    full = tiny_trainer(tiny_config(tmp_path / "full", **DEPTH_SECTIONS))
    full_result = full.train()
    assert (full_result.model.num_refinement_blocks, full_result.model.num_latent_refinements) == (3, 2)
    cur = [r for r in read_metrics(tmp_path / "full" / "metrics.jsonl", split="curriculum")]
    assert len(cur) == 1 and cur[0]["note"] == "params carried over"  # no shape change: nothing re-initialised

    cut = tiny_trainer(tiny_config(tmp_path / "cut", **DEPTH_SECTIONS))
    sigterm_at_step(cut, 3)
    assert cut.train().step == 3
    resumed = tiny_trainer(tiny_config(tmp_path / "cut", **DEPTH_SECTIONS), resume=True).train()
    assert resumed.step == 5 and not resumed.interrupted
    np.testing.assert_allclose(train_losses(tmp_path / "cut"), train_losses(tmp_path / "full"), rtol=1e-6)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), resumed.params,
                 full_result.params)
    train = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert all(r["recursion_depth"] == 1 and r["halt_loss"] == 0 for r in train)  # one step per sample

    loaded = load(tmp_path / "full")  # the run ended in the deeper stage: inference recurses as it trained
    assert (loaded.model.num_refinement_blocks, loaded.model.num_latent_refinements) == (3, 2)
