"""User JSONL datasets: both row formats, error messages with file and line, config dispatch."""

import json

import pytest

from trm_jax.config import TRMConfig
from trm_jax.data.jsonl import read_jsonl, write_jsonl
from trm_jax.data.tokenizers import load_tokenizer
from trm_jax.errors import TRMError
from trm_jax.tasks import get_task
from trm_jax.tasks.sudoku import SAMPLE_CSV


def _write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return str(path)


def test_reads_both_formats_and_skips_blank_lines(tmp_path):
    path = _write(tmp_path, ['\ufeff{"input": "ab", "output": "ba"}', "",
                             '{"context": "x = 1", "query": "x", "answer": "1", "id": 7}',
                             '{"query": "héllo?", "answer": "日本", "difficulty": 0.5}'])
    rows = read_jsonl(path)
    assert len(rows) == 3 and rows[1]["id"] == 7 and rows[2]["answer"] == "日本"


@pytest.mark.parametrize("line, message", [
    ('{"input": "a", "output": "b"', r"data.jsonl:2: invalid JSON"),
    ('["a", "b"]', r"data.jsonl:2: expected a JSON object, got list"),
    ('{"input": "a"}', r"data.jsonl:2: missing key 'output'"),
    ('{"query": "a"}', r"data.jsonl:2: missing key 'answer'"),
    ('{"input": "a", "output": 7}', r"data.jsonl:2: 'output' must be a string, got int \(7\); quote it"),
    ('{"context": 3, "query": "q", "answer": "a"}', r"data.jsonl:2: 'context' must be a string"),
    ('{"text": "a"}', r"data.jsonl:2: no 'input'/'output' or 'query'/'answer' keys \(found \['text'\]\)"),
    ('{"input": "a", "output": "b", "difficulty": "hard"}', r"data.jsonl:2: 'difficulty' must be a finite number"),
    (b'{"input": "\xff", "output": "b"}', r"data.jsonl:2: not valid UTF-8"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, ['{"input": "ok", "output": "ok"}', line])
    with pytest.raises(TRMError, match=message):
        read_jsonl(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(TRMError, match="JSONL file not found"):
        read_jsonl(str(tmp_path / "nope.jsonl"))
    with pytest.raises(TRMError, match="no rows"):
        read_jsonl(_write(tmp_path, [""]))


def test_jsonl_task_splits_and_tokenizes(tmp_path):
    rows = [{"input": f"n{i}", "output": str(i * 2)} for i in range(50)]
    path = str(tmp_path / "train.jsonl")
    write_jsonl(path, rows)
    cfg = TRMConfig.from_dict({"seed": 3, "data": {"task": "jsonl", "train_path": path, "num_eval": 8,
                                                   "seq_len": 8}})
    train_rows, eval_rows = get_task(cfg).samples("train"), get_task(cfg).samples("eval")
    assert len(eval_rows) == 5 and len(train_rows) == 45  # 10% held out when there is no eval file
    assert not {r["input"] for r in train_rows} & {r["input"] for r in eval_rows}
    tok = load_tokenizer("char")[0]
    train, evals = get_task(cfg).datasets(tok, seq_len=8, difficulty=0.5)
    assert train.inputs.shape == (45, 8) and evals.inputs.shape == (5, 8)
    assert tok.decode(train.inputs[0]) == train.texts[0]["input"]

    eval_path = str(tmp_path / "eval.jsonl")
    write_jsonl(eval_path, rows[:3])
    cfg2 = TRMConfig.from_dict({"data": {"task": "jsonl", "train_path": path, "eval_path": eval_path,
                                         "max_train_rows": 20}})
    assert len(get_task(cfg2).samples("eval")) == 3 and len(get_task(cfg2).samples("train")) == 20


def test_too_long_row_names_its_sample_in_error_mode(tmp_path):
    path = _write(tmp_path, [json.dumps({"input": "x" * 30, "output": "y"})] * 12)
    cfg = TRMConfig.from_dict({"data": {"task": "jsonl", "train_path": path, "truncation": "error"}})
    with pytest.raises(TRMError, match="has 30 tokens, more than seq_len=16.*data.truncation: truncate"):
        get_task(cfg).datasets(load_tokenizer("char")[0], seq_len=16, difficulty=0.5)


def test_sudoku_task_from_csv_config():
    cfg = TRMConfig.from_dict({"data": {"task": "sudoku", "train_path": SAMPLE_CSV, "num_eval": 10,
                                        "max_train_rows": 40, "seq_len": 81}})
    tok = load_tokenizer("grid")[0]
    train, evals = get_task(cfg).datasets(tok, seq_len=81, difficulty=0.5)
    assert train.inputs.shape == (40, 81) and evals.inputs.shape == (10, 81)
    assert train.augment is not None and evals.augment is None
    assert train.labels.min() >= 2 and train.inputs.max() <= 10  # solution = digits only, vocab 11
    eval_inputs = {t["input"] for t in evals.texts}
    assert not eval_inputs & {t["input"] for t in train.texts}
