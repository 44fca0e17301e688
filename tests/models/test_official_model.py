"""The official TRM model (SamsungSAILMontreal/TinyRecursiveModels): imported random official weights give
the numbers of an independent NumPy reference (tests/_official_reference.py); checkpoints round-trip."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import _official_reference as ref  # noqa: E402

from trm_jax.errors import TRMError  # noqa: E402
from _paths import REPO  # noqa: E402
from trm_jax.models import (  # noqa: E402
    TransformerNetwork,
    from_official_checkpoint,
    initial_carry,
    supervision_step,
    to_official_state_dict,
    to_torch_state_dict,
)

SEQ, VOCAB, IDS, BATCH = 6, 7, 5, 3
ROOT = REPO


def arch(**kw):
    base = dict(hidden_size=16, L_layers=2, H_cycles=2, L_cycles=2, expansion=2, num_heads=2, pos_encodings="rope",
                rope_theta=10000.0, rms_norm_eps=1e-5, mlp_t=False, puzzle_emb_ndim=16, puzzle_emb_len=0,
                halt_max_steps=4, seq_len=SEQ)
    base.update(kw)
    return base


CASES = {
    "attention_rope_ndim_eq_hidden": arch(),
    "attention_rope_ndim_lt_hidden_len2": arch(puzzle_emb_ndim=12, puzzle_emb_len=2),
    "mlp_t_ndim_lt_hidden": arch(mlp_t=True, puzzle_emb_ndim=10, pos_encodings="none"),
    "attention_learned_pos": arch(pos_encodings="learned", puzzle_emb_ndim=24),  # 2 prefix positions
    "mlp_t_no_prefix_learned": arch(mlp_t=True, puzzle_emb_ndim=0, pos_encodings="learned"),
}


def inputs(seed=0):
    rs = np.random.RandomState(seed)
    return rs.randint(0, VOCAB, (BATCH, SEQ)).astype(np.int32), rs.randint(0, IDS, (BATCH,)).astype(np.int32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_imported_official_weights_match_reference(name):
    a = CASES[name]
    sd = ref.random_official_state_dict(a, SEQ, VOCAB, IDS, seed=1)
    model, params = from_official_checkpoint(sd, a)
    assert model.prefix_len == ref.prefix_len(a) and model.token_len == SEQ
    toks, ids = inputs()
    carry_ref = ref.initial_carry(ref.strip(sd), a, BATCH, SEQ)
    carry = initial_carry(model, params, BATCH)
    np.testing.assert_allclose(carry.y, carry_ref[0], rtol=1e-6)
    np.testing.assert_allclose(carry.z, carry_ref[1], rtol=1e-6)
    for step in range(2):  # two consecutive supervision steps from the carried state
        carry_ref, logits_ref, q_halt_ref, _ = ref.inner_forward(sd, a, carry_ref, toks, ids)
        out = supervision_step(model, params, jnp.asarray(toks), carry, puzzle_ids=jnp.asarray(ids))
        carry = out.carry
        np.testing.assert_allclose(out.logits, logits_ref, rtol=2e-4, atol=2e-4, err_msg=f"step {step}")
        np.testing.assert_allclose(out.halt_logits, q_halt_ref, rtol=2e-4, atol=2e-4, err_msg=f"step {step}")
        np.testing.assert_allclose(carry.y, carry_ref[0], rtol=2e-4, atol=2e-4)
        np.testing.assert_allclose(carry.z, carry_ref[1], rtol=2e-4, atol=2e-4)


def test_network_block_stack_matches_reference():
    """The network alone against the reference's L_level (mlp_t and attention)."""
    for a in (arch(), arch(mlp_t=True)):
        S = SEQ + 1
        sd = ref.strip(ref.random_official_state_dict(a, SEQ, VOCAB, IDS, seed=3))
        model, params = from_official_checkpoint({k: v for k, v in sd.items()}, a)
        h = np.random.RandomState(0).normal(size=(2, S, 16))
        net = model.network
        assert isinstance(net, TransformerNetwork) and net.seq_len == S
        out = jax.jit(net.apply)({"params": params["network"]}, jnp.asarray(h, jnp.float32))
        np.testing.assert_allclose(out, ref.l_level(sd, h, 0.0, a), rtol=1e-4, atol=1e-4)


def test_bfloat16_checkpoint_and_prefixes():
    a = CASES["attention_rope_ndim_eq_hidden"]
    sd16 = ref.random_official_state_dict(a, SEQ, VOCAB, IDS, seed=2, prefix="model.inner.", dtype=torch.bfloat16)
    _, params = from_official_checkpoint(sd16, a)
    plain = {k[len("model.inner."):]: v.float() for k, v in sd16.items()}
    _, params2 = from_official_checkpoint(plain, a)
    jax.tree.map(np.testing.assert_array_equal, params, params2)
    np.testing.assert_array_equal(params["lm_head"]["kernel"], plain["lm_head.weight"].numpy().T)


def test_official_state_dict_round_trip(tmp_path):
    a = CASES["attention_learned_pos"]
    sd = ref.random_official_state_dict(a, SEQ, VOCAB, IDS, seed=4)
    model, params = from_official_checkpoint(sd, a)
    back = to_official_state_dict(model, params)
    assert set(back) == set(sd)  # the keys the official module's load_state_dict expects
    for k in sd:
        np.testing.assert_array_equal(back[k].numpy(), sd[k].numpy(), err_msg=k)
    # and through a file + all_config.yaml beside it, as pretrain.py writes them
    import yaml

    torch.save(back, tmp_path / "step_10")
    arch_doc = {k: v for k, v in a.items() if k != "seq_len"}  # seq_len is dataset metadata, not arch
    arch_doc.update(name="recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
                    loss={"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"})
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch_doc, "data_paths": ["nowhere"]}))
    model2, params2 = from_official_checkpoint(tmp_path / "step_10")  # seq_len from embed_pos
    assert model2 == model and model2.loss == "stablemax"
    jax.tree.map(np.testing.assert_array_equal, params, params2)


def test_torch_state_dict_round_trip_loads_into_pypi_model():
    trm_pt = pytest.importorskip("tiny_recursive_model")
    from trm_jax.models import config_from_torch_state_dict, from_torch_state_dict, make_model

    torch.manual_seed(0)
    pt = trm_pt.TinyRecursiveModel(dim=16, num_tokens=VOCAB, num_register_tokens=2,
                                   network=trm_pt.MLPMixer1D(dim=16, depth=2, seq_len=SEQ + 2))
    sd = pt.state_dict()
    cfg, seq_len = config_from_torch_state_dict(sd)
    model = make_model(cfg, seq_len=seq_len)
    back = to_torch_state_dict(model, from_torch_state_dict(sd))
    fresh = trm_pt.TinyRecursiveModel(dim=16, num_tokens=VOCAB, num_register_tokens=2,
                                      network=trm_pt.MLPMixer1D(dim=16, depth=2, seq_len=SEQ + 2))
    fresh.load_state_dict(back, strict=True)
    for k, v in sd.items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_bad_checkpoints_raise_one_clear_error(tmp_path):
    a = CASES["attention_rope_ndim_eq_hidden"]
    sd = ref.random_official_state_dict(a, SEQ, VOCAB, IDS)
    wrong = r"key 'L_level.layers.0.mlp.gate_up_proj.weight' has shape \(512, 16\) but the arch expects \(1024, 16\)"
    with pytest.raises(TRMError, match=wrong + "; wrong arch"):
        from_official_checkpoint(sd, dict(a, expansion=40))  # SwiGLU width 512, not 256
    with pytest.raises(TRMError, match=r"missing key 'L_level\.layers\.1\.mlp\.down_proj\.weight'"):
        from_official_checkpoint({k: v for k, v in sd.items() if not k.endswith("layers.1.mlp.down_proj.weight")}, a)
    with pytest.raises(TRMError, match=r"key 'L_level\.layers\.1\..*not part of the model.*L_layers=1"):
        from_official_checkpoint(sd, dict(a, L_layers=1))
    path = tmp_path / "step_1"
    torch.save(sd, path)
    data = path.read_bytes()
    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    with pytest.raises(TRMError, match=r"truncated.*cannot be read|cannot be read.*truncated"):
        from_official_checkpoint(tmp_path / "truncated", a)
    import argparse
    import pickle

    (tmp_path / "pickle").write_bytes(pickle.dumps(argparse.Namespace(weights=1)))  # a foreign object
    with pytest.raises(TRMError, match=r"pickle.*cannot be read"):
        from_official_checkpoint(tmp_path / "pickle", a)
    torch.save([1, 2, 3], tmp_path / "list")
    with pytest.raises(TRMError, match=r"list.*holds a list, not a model state dict"):
        from_official_checkpoint(tmp_path / "list", a)
    with pytest.raises(TRMError, match=r"no all_config.yaml beside"):
        from_official_checkpoint(path)
    with pytest.raises(TRMError, match="does not exist"):
        from_official_checkpoint(tmp_path / "nope", a)
    with pytest.raises(TRMError, match="seq_len"):  # RoPE attention: the length is in no tensor
        from_official_checkpoint(sd, {k: v for k, v in a.items() if k != "seq_len"})


def test_import_script_writes_a_run_that_load_and_evaluate_use(tmp_path):
    import trm_jax

    a = CASES["attention_rope_ndim_lt_hidden_len2"]
    sd = ref.random_official_state_dict(a, SEQ, VOCAB, IDS, seed=5)
    torch.save(sd, tmp_path / "step_3")
    import yaml

    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": {k: v for k, v in a.items()}}))
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "import_checkpoint.py"), "--official",
                          str(tmp_path / "step_3"), "--out", str(run)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    loaded = trm_jax.load(run)
    model, params = from_official_checkpoint(sd, a)
    jax.tree.map(np.testing.assert_array_equal, loaded.params, params)
    assert loaded.config.model.variant == "official" and loaded.seq_len == SEQ
    toks, ids = inputs()
    out = supervision_step(loaded.model, loaded.params, jnp.asarray(toks), initial_carry(model, params, BATCH),
                           puzzle_ids=jnp.asarray(ids))
    _, logits_ref, q_ref, _ = ref.inner_forward(sd, a, ref.initial_carry(ref.strip(sd), a, BATCH, SEQ), toks, ids)
    np.testing.assert_allclose(out.logits, logits_ref, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out.halt_logits, q_ref, rtol=2e-4, atol=2e-4)


def _write_official_split(root, split, n, num_ids, seed):
    """A split as the official builders write it (dataset/common.py PuzzleDatasetMetadata + all__*.npy):
    one example per puzzle, one puzzle per group, label 0 = ignored."""
    import json

    rng = np.random.default_rng(seed)
    d = os.path.join(root, split)
    os.makedirs(d, exist_ok=True)
    inputs = rng.integers(1, VOCAB, (n, SEQ)).astype(np.uint8)
    meta = dict(pad_id=0, ignore_label_id=0, blank_identifier_id=0, vocab_size=VOCAB, seq_len=SEQ,
                num_puzzle_identifiers=num_ids, total_groups=n, mean_puzzle_examples=1.0, total_puzzles=n,
                sets=["all"])
    with open(os.path.join(d, "dataset.json"), "w") as f:
        json.dump(meta, f)
    arrays = dict(inputs=inputs, labels=inputs[:, ::-1].copy(),
                  puzzle_identifiers=rng.integers(0, num_ids, n).astype(np.int32),
                  puzzle_indices=np.arange(n + 1, dtype=np.int32), group_indices=np.arange(n + 1, dtype=np.int32))
    for k, v in arrays.items():
        np.save(os.path.join(d, f"all__{k}.npy"), v)


def test_imported_official_run_evaluates_on_its_dataset(tmp_path):
    """all_config.yaml's data_paths -> dataset.json gives seq_len (RoPE) and the run's eval split."""
    import json

    import yaml

    a = {k: v for k, v in CASES["attention_rope_ndim_eq_hidden"].items() if k != "seq_len"}
    data = tmp_path / "data" / "sudoku-tiny"
    _write_official_split(str(data), "train", 8, IDS, 0)
    _write_official_split(str(data), "test", 6, IDS, 1)
    torch.save(ref.random_official_state_dict(dict(a, seq_len=SEQ), SEQ, VOCAB, IDS, seed=6), tmp_path / "step_2")
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": a, "data_paths": [str(data)]}))
    run = tmp_path / "run"

    def script(name, *args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args], capture_output=True,
                              text=True, cwd=ROOT)

    res = script("import_checkpoint.py", "--official", str(tmp_path / "step_2"), "--out", str(run))
    assert res.returncode == 0, res.stderr
    res = script("evaluate.py", "--run", str(run), "--halt-threshold", "2", "--batch-size", "4")
    assert res.returncode == 0, res.stderr
    results = json.loads((run / "eval_results.json").read_text())
    assert 0.0 <= results["exact_accuracy"] <= 1.0 and results["num_samples"] == 6
    assert results["recursion_depth"] == 4.0  # threshold > 1: every sample runs halt_max_steps (official eval)
    res = script("evaluate.py", "--run", str(run), "--batch-size", "4")  # both: halting, then all steps
    assert res.returncode == 0 and "all 4 steps (official evaluation)" in res.stdout, res.stderr
    both = json.loads((run / "eval_results.json").read_text())
    assert both["all_steps"]["recursion_depth"] == 4.0 and both["recursion_depth"] <= 4.0
    assert both["all_steps"]["exact_accuracy"] == results["exact_accuracy"]


def test_import_script_torch_checkpoint(tmp_path):
    trm_pt = pytest.importorskip("tiny_recursive_model")
    import trm_jax
    from trm_jax.models import from_torch_state_dict

    torch.manual_seed(1)
    pt = trm_pt.TinyRecursiveModel(dim=16, num_tokens=VOCAB, network=trm_pt.MLPMixer1D(dim=16, depth=1, seq_len=SEQ))
    torch.save(pt.state_dict(), tmp_path / "trm.pt")
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "import_checkpoint.py"), "--torch",
                          str(tmp_path / "trm.pt"), "--n", "2", "--T", "3", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    loaded = trm_jax.load(tmp_path / "run")
    assert loaded.seq_len == SEQ and loaded.config.model.num_latent_refinements == 2
    jax.tree.map(np.testing.assert_array_equal, loaded.params, from_torch_state_dict(pt.state_dict()))
