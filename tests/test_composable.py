"""The composable model and the seed-style API: any Flax network, Trainer(model, dataset), predict forms."""

import ast
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

import trm_jax
from trm_jax import MLPMixer1D, ModelConfig, TinyRecursiveModel, Trainer, make_model
from trm_jax.errors import ConfigError, TRMError
from trm_jax.models import PUZZLE_EMB, initial_carry, model_config, supervision_step

V, L = 5, 8


def copy_task(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (n, L)).astype(np.int32)
    return x, x.copy()


def test_seed_snippet_runs_with_the_import_changed():
    # the PyPI package's README code, with trm_jax imported (dims shrunk for a 2-core CPU)
    trm = TinyRecursiveModel(dim=16, num_tokens=11, network=MLPMixer1D(dim=16, depth=1, seq_len=81),
                             num_refinement_blocks=2, num_latent_refinements=2, num_register_tokens=0)
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 11, (32, 81))
    dataset = (seq, rng.integers(0, 11, (32, 81)))
    result = Trainer(trm, dataset, epochs=1, batch_size=16, progress_bar=False)()
    assert result.step == 2 and result.history
    # the one change to ported code: the trained weights come back from training, predict takes them
    pred, exits = trm.predict(result.params, seq[:4], halt_prob_thres=.5, max_deep_refinement_steps=12)
    assert pred.shape == (4, 81) and exits.shape == (4,) and np.all((1 <= exits) & (exits <= 12))
    out = trm.predict(result.params, seq[:4], halt_threshold=.5, max_recursion_depth=12)  # same knobs, new names
    preds, depth = out[:2]
    np.testing.assert_array_equal(preds, pred)
    np.testing.assert_array_equal(depth, out.recursion_depth)
    assert out.halt_prob.shape == (4,)


class ResidualMLP(nn.Module):
    """A user-defined network: [batch, seq, dim] -> [batch, seq, dim], with dropout."""

    dim: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, h, deterministic: bool = True):
        a = nn.Dense(2 * self.dim)(nn.LayerNorm()(h))
        a = nn.Dropout(self.dropout)(nn.gelu(a), deterministic=deterministic)
        return h + nn.Dense(self.dim)(a)


def test_user_defined_network_trains_through_trainer():
    model = TinyRecursiveModel(dim=32, num_tokens=V, network=ResidualMLP(32, dropout=0.1),
                               num_refinement_blocks=2, num_latent_refinements=1, max_recursion_depth=2)
    train, evl = copy_task(256), copy_task(64, seed=1)
    result = Trainer(model, train, eval_dataset={"inputs": evl[0], "labels": evl[1]}, steps=60, batch_size=32,
                     learning_rate=3e-3, warmup_steps=10, ema_decay=0.9, log_every=5, progress_bar=False)()
    assert model_config(result.model) is None  # no config describes it; it still trains
    assert result.history[0]["token_accuracy"] < 0.6 < 0.9 < result.history[-1]["token_accuracy"]
    assert result.eval["token_accuracy"] > 0.6 and result.eval["num_samples"] == 64
    assert not os.path.exists(result.run_dir)  # run_dir=None: a temporary directory, removed at the end


def test_trainer_rejects_bad_arguments():
    model = TinyRecursiveModel(dim=16, num_tokens=V, network=ResidualMLP(16))
    with pytest.raises(ConfigError, match="learning_rat"):
        Trainer(model, copy_task(8), learning_rat=1e-3)
    with pytest.raises(ConfigError, match="dataset is missing"):
        Trainer(model)
    mixer = TinyRecursiveModel(dim=16, num_tokens=V, network=MLPMixer1D(16, 1, L + 1))
    with pytest.raises(ConfigError, match="rows have 8 tokens but the model takes 9"):
        Trainer(mixer, copy_task(8))
    with pytest.raises(TRMError, match=r"takes the weights first: model.predict\(params, tokens\).*result.params"):
        TinyRecursiveModel(dim=16, num_tokens=7, network=ResidualMLP(16), seq_len=L).predict(np.zeros((1, L), int))


def test_seed_flow_with_a_network_that_has_no_seq_len():
    """The PyPI package needs no sequence length for such a network: neither does init_params, Trainer or predict."""
    model = TinyRecursiveModel(dim=16, num_tokens=7, network=ResidualMLP(16), num_refinement_blocks=2,
                               num_latent_refinements=2)
    params = model.init_params(jax.random.key(0))
    assert params["network"]["Dense_0"]["kernel"].shape == (16, 32)
    sample = np.zeros((3, 11), np.int32)
    jax.tree.map(np.testing.assert_array_equal, model.init_params(jax.random.key(0), sample), params)  # Flax form
    inputs = np.random.default_rng(0).integers(1, 7, (64, L)).astype(np.int32)
    result = Trainer(model, (inputs, inputs), steps=20, batch_size=8, progress_bar=False)()
    tokens = inputs[:5]
    trained = model.predict(result.params, tokens)  # the user's model object, which never had a seq_len
    np.testing.assert_array_equal(trained.tokens, trm_jax.predict(result.model, result.params, tokens).tokens)
    untrained = model.predict(params, tokens)
    assert trained.tokens.shape == untrained.tokens.shape == (5, L)
    assert not np.array_equal(trained.tokens, untrained.tokens)


class SequenceMixing(nn.Module):
    """A network whose weights are sized by the sequence length (a dense layer across positions)."""

    @nn.compact
    def __call__(self, h):
        return h + nn.Dense(h.shape[1])(h.transpose(0, 2, 1)).transpose(0, 2, 1)


def test_init_params_asks_for_seq_len_only_where_the_shapes_need_it():
    model = TinyRecursiveModel(dim=8, num_tokens=V, network=SequenceMixing(), num_register_tokens=1)
    with pytest.raises(TRMError, match="shapes depend on the sequence length.*seq_len=L"):
        model.init_params(jax.random.key(0))
    params = model.init_params(jax.random.key(0), np.zeros((2, L), np.int32))  # length from the sample input
    assert params["network"]["Dense_0"]["kernel"].shape == (L + 1, L + 1)  # one register token in front
    sized = model.clone(seq_len=L)
    jax.tree.map(np.testing.assert_array_equal, sized.init_params(jax.random.key(0)), params)
    with pytest.raises(TRMError, match="tokens have 5 positions per sample but the model takes 8"):
        sized.init_params(jax.random.key(0), np.zeros((2, 5), np.int32))
    with pytest.raises(TRMError, match="tokens have 5 positions per sample but the model takes 8"):
        sized.predict(params, np.zeros((2, 5), np.int32))


def test_training_returns_the_weights_and_leaves_the_model_as_it_was():
    def model():
        return TinyRecursiveModel(dim=16, num_tokens=V, network=MLPMixer1D(16, 1, L), num_refinement_blocks=2,
                                  num_latent_refinements=1)

    first, second = model(), model()
    before = dict(vars(first))
    x, y = copy_task(32)
    trainers = [Trainer(m, (x, labels), steps=3, batch_size=8, learning_rate=lr, warmup_steps=0, progress_bar=False)
                for m, labels, lr in ((first, y, 1e-2), (second, (y + 1) % V, 3e-2))]
    results = [trainer() for trainer in trainers]
    assert vars(first) == before and first == second and hash(first) == hash(second)  # nothing written on them
    assert not np.array_equal(results[0].params["to_pred"]["kernel"], results[1].params["to_pred"]["kernel"])
    for m, trainer, result in zip((first, second), trainers, results):
        jax.tree.map(np.testing.assert_array_equal, trainer.params, result.params)  # the trainer holds them too
        own = trm_jax.predict(m, result.params, x)
        for got in (m.predict(result.params, x), result.model.predict(result.params, x)):
            jax.tree.map(np.testing.assert_array_equal, got, own)
    with pytest.raises(TRMError, match="takes the weights first"):  # no weights kept anywhere for a model
        first.predict(x[:4])


def test_one_factory_name_each():
    """create_model takes a run config (its data.seq_len, model.num_tokens) or a ModelConfig with num_tokens and
    seq_len (make_model's route); create_tokenizer gives the run's task tokenizer; the make_* twins are gone."""
    cfg = trm_jax.TRMConfig.from_dict({"model": {"dim": 16, "depth": 1, "num_tokens": V}, "data": {"seq_len": L}})
    assert trm_jax.create_model(cfg) == make_model(cfg.model, V, L)
    assert trm_jax.create_model(cfg.model, V, L) == make_model(cfg.model, V, L)
    with pytest.raises(ConfigError, match="seq_len="):
        trm_jax.create_model(cfg.model, V)
    tokenizer, vocab, _ = trm_jax.create_tokenizer(trm_jax.TRMConfig())
    assert vocab == tokenizer.vocab_size
    for gone in ("make_model_from_config", "make_trainer", "make_tokenizer", "create_train_state"):
        assert not hasattr(trm_jax, gone) and not hasattr(trm_jax.training, gone), gone


@pytest.mark.parametrize("network", ["mixer", "transformer"])
def test_make_model_and_model_config_round_trip(network):
    cfg = ModelConfig(network=network, dim=16, depth=1, num_heads=2, num_register_tokens=2, num_tokens=V,
                      max_recursion_depth=5, halt_threshold=0.7)
    model = make_model(cfg, V, L)
    assert model.token_len == L and model.total_len == L + 2
    back = model_config(model)
    assert back is not None and make_model(back, V, L) == model


def official(**kw):
    base = dict(variant="official", network="transformer", dim=16, depth=1, num_heads=2, num_refinement_blocks=2,
                num_latent_refinements=2, puzzle_emb_ndim=12, num_puzzle_identifiers=10, loss="stablemax",
                halt_loss_weight=0.5)
    base.update(kw)
    return make_model(ModelConfig(**base), V, L)


def test_official_edges():
    model = official(pos_encodings="learned")
    assert model.prefix_len == 1 and model.total_len == L + 1  # ceil(12 / 16)
    params = model.init_params(jax.random.key(0))
    assert params[PUZZLE_EMB].shape == (10, 12) and not np.any(params[PUZZLE_EMB])  # zero init
    np.testing.assert_array_equal(params["q_head"]["bias"], [-5.0, -5.0])
    table = np.asarray(jax.random.normal(jax.random.key(1), (10, 12)))
    params = {**params, PUZZLE_EMB: jnp.asarray(table)}
    toks, ids = jnp.asarray(copy_task(3)[0]), jnp.array([4, 0, 9])
    x = model.apply({"params": params}, toks, ids, method=TinyRecursiveModel.embed)
    tok_emb = np.asarray(params["embed_tokens"]["embedding"])[np.asarray(toks)]
    prefix = np.pad(table[np.asarray(ids)], ((0, 0), (0, 4)))[:, None]  # zero-padded to one 16-wide position
    ref = 4.0 * 0.707106781 * (np.concatenate([prefix, tok_emb], 1) + np.asarray(params["embed_pos"]["embedding"]))
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-6)
    carry = initial_carry(model, params, 3)
    np.testing.assert_array_equal(carry.y[1, 3], params["H_init"])
    np.testing.assert_array_equal(carry.z[2, 0], params["L_init"])
    out = supervision_step(model, params, toks, carry, puzzle_ids=ids)
    assert out.logits.shape == (3, L, V)
    np.testing.assert_allclose(out.halt_logits, -5.0, atol=1e-5)  # q_head starts at weight 0, bias -5

    def loss(p):
        return supervision_step(model, p, toks, carry, puzzle_ids=ids).logits.sum()

    grads = jax.grad(loss)(params)
    assert not np.any(grads["H_init"]) and not np.any(grads["L_init"])  # fixed initial states
    assert not np.any(np.asarray(grads[PUZZLE_EMB])[[1, 2, 3, 5, 6, 7, 8]])  # only the rows used


def test_sparse_sign_sgd_matches_dense_reference():
    from trm_jax.training.step import sparse_sign_sgd

    rng = np.random.default_rng(0)
    table = rng.normal(size=(20, 3)).astype(np.float32)
    ids = np.array([3, 7, 3, 19, 0, 7, 7, 12], np.int32)
    grads = rng.normal(size=(8, 3)).astype(np.float32)
    dense = np.zeros_like(table)
    np.add.at(dense, ids, grads)
    touched = np.zeros(20, bool)
    touched[ids] = True
    ref = np.where(touched[:, None], table * (1 - 0.1 * 0.5) - 0.1 * np.sign(dense), table)
    out = sparse_sign_sgd(jnp.asarray(table), jnp.asarray(ids), jnp.asarray(grads), 0.1, 0.5)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_train_step_updates_only_the_puzzle_rows_it_used():
    from trm_jax.config import TrainingConfig
    from trm_jax.training import distributed as dist
    from trm_jax.training.state import make_optimizer, make_train_state
    from trm_jax.training.step import StepSpec, empty_train_carry, make_train_step, pmap_train_step

    model = official()
    training = TrainingConfig(warmup_steps=0, lr_schedule="constant", puzzle_emb_lr=0.1, puzzle_emb_weight_decay=0.5,
                              halt_exploration_prob=0.0)
    spec = StepSpec.create(training, total_steps=10, global_batch=4, peak_lr=1e-3)
    params = jax.device_get(model.init_params(jax.random.key(0)))
    params[PUZZLE_EMB] = np.random.default_rng(1).normal(size=(10, 12)).astype(np.float32)
    state = make_train_state(params, make_optimizer(training))
    assert PUZZLE_EMB not in state.ema_params  # no dense EMA or optimizer state of the table
    assert all(leaf.shape != (10, 12) for leaf in jax.tree.leaves(state.opt_state))
    x, y = copy_task(4)
    batch = dict(inputs=x, labels=y, puzzle_ids=np.array([2, 5, 2, 8], np.int32), difficulty=np.zeros(4, np.float32))
    step = pmap_train_step(make_train_step(model, spec))
    new, _, _ = step(dist.replicate(state), dist.put_sharded(dist.shard(empty_train_carry(4, model))),
                     dist.shard(batch), np.asarray(jax.random.key_data(jax.random.key(0))))
    table = dist.unreplicate(new.params)[PUZZLE_EMB]
    changed = np.any(table != params[PUZZLE_EMB], axis=1)
    np.testing.assert_array_equal(np.nonzero(changed)[0], [2, 5, 8])
    # sign-SGD with decoupled decay: every touched entry moved by decay plus exactly +-lr
    delta = table[changed] - params[PUZZLE_EMB][changed] * (1 - 0.1 * 0.5)
    np.testing.assert_allclose(np.abs(delta[np.abs(delta) > 1e-6]), 0.1, rtol=1e-4)


def test_step_spec_is_exactly_what_the_step_depends_on():
    from trm_jax.config import TrainingConfig
    from trm_jax.training.step import StepSpec

    base = TrainingConfig()
    spec = StepSpec.create(base, total_steps=100, global_batch=8, peak_lr=1e-3)
    loop_only = TrainingConfig(eval_every=7, log_every=3, checkpoint_every=9, keep_checkpoints=1, progress_bar=False,
                               max_consecutive_nonfinite=2, eval_batch_size=3, steps=5, batch_size=4)
    assert StepSpec.create(loop_only, total_steps=100, global_batch=8, peak_lr=1e-3) == spec
    for change in (dict(ema_decay=0.5), dict(beta2=0.9), dict(puzzle_emb_lr=0.5), dict(warmup_steps=3)):
        other = TrainingConfig(**change)
        assert StepSpec.create(other, total_steps=100, global_batch=8, peak_lr=1e-3) != spec, change


def _package_imports():
    """(module, imported module, names) for every `trm_jax` import inside the package (top level or not)."""
    root = pathlib.Path(__file__).resolve().parents[1] / "trm_jax"
    for path in root.rglob("*.py"):
        mod = ".".join(("trm_jax",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trm_jax"):
                yield mod, node.module, [a.name for a in node.names]


def _area(mod):
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else mod


def test_no_import_cycles_between_areas_and_no_private_names_across_them():
    graph = {}
    for mod, target, names in _package_imports():
        a, b = _area(mod), _area(target)
        if a != b and b != "trm_jax":
            graph.setdefault(a, set()).add(b)
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{mod} imports private {private} from {target}"
    # models imports nothing of the package but the layers below it (DESIGN.md): config, errors, data
    assert graph.get("trm_jax.models", set()) <= {"trm_jax.config", "trm_jax.errors", "trm_jax.data"}

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = [a for a in graph if a in reachable(a)]
    assert not cycles, f"import cycles through {cycles}: {graph}"


def test_training_is_split_by_job_and_the_trainer_composes_its_run():
    root = pathlib.Path(__file__).resolve().parents[1] / "trm_jax" / "training"
    modules = sorted(p.stem for p in root.glob("*.py") if p.stem != "__init__")
    assert len(modules) <= 15, modules
    assert Trainer.__bases__ == (object,)  # a TrainingRun held, not inherited
    edges = {(m, t) for m, t, _ in _package_imports()}
    assert ("trm_jax.training.trainer", "trm_jax.training.run") in edges
    assert not any(t == "trm_jax.training.trainer" for m, t in edges if m.startswith("trm_jax.training."))


def test_run_with_a_puzzle_table_loads_ema_weights_with_the_live_table(tmp_path):
    import trm_jax

    model = official()
    x, y = copy_task(32)
    ids = np.arange(32, dtype=np.int32) % 10
    run = tmp_path / "run"
    result = Trainer(model, dict(inputs=x, labels=y, puzzle_ids=ids), steps=3, batch_size=8, run_dir=str(run),
                     warmup_steps=0, ema_decay=0.9, puzzle_emb_lr=0.1)()
    ema, raw = trm_jax.load(run), trm_jax.load(run, use_ema=False)
    table = np.asarray(raw.params[PUZZLE_EMB])
    assert np.any(table)  # trained rows moved from the zero init
    np.testing.assert_array_equal(ema.params[PUZZLE_EMB], table)  # no EMA copy of the table: the live one
    np.testing.assert_array_equal(ema.params["lm_head"]["kernel"], result.params["lm_head"]["kernel"])
    assert not np.array_equal(ema.params["lm_head"]["kernel"], raw.params["lm_head"]["kernel"])
    got = trm_jax.predict(ema.model, ema.params, jnp.asarray(x[:4]), puzzle_ids=jnp.asarray(ids[:4]))
    assert got.tokens.shape == (4, L)
