"""A task defined outside the package, as a user would: reverse a word of letters. Runs name it
`data.task: "tests._toy_task:ToyTask"`; nothing in trm_jax knows it. Queries and answers are upper case
(the tokenizer knows only lower case), so an answer comes through this task's encode/decode or not at all."""

from dataclasses import dataclass

import numpy as np

from trm_jax.data.datasets import IGNORE_LABEL, ArrayDataset
from trm_jax.data.tokenizers import CharTokenizer
from trm_jax.tasks.base import Task, require

LETTERS = "abcd"


@dataclass(frozen=True)
class ToyOptions:
    toy_word_len: int = 4  # toy: letters per word


class ToyTask(Task):
    Options = ToyOptions

    def validate(self):
        n = self.options.toy_word_len
        require(1 <= n <= self.data.seq_len, "data.toy_word_len", f"must be in [1, data.seq_len], got {n}")

    def build_tokenizer(self):
        return CharTokenizer(LETTERS, eos=False, unk=False, name="toy")  # pad 0, letters 1..4

    def samples(self, split, difficulty=None):
        rng = np.random.default_rng(self.generated_seed(split))
        words = rng.choice(list(LETTERS), size=(self.split_size(split), self.options.toy_word_len))
        return [{"input": "".join(w).upper(), "output": "".join(w[::-1]).upper()} for w in words]

    def datasets(self, tokenizer, *, seq_len=None, difficulty=None, samples_transform=None):
        seq_len, _ = self.stage(seq_len, difficulty)
        out = []
        for split in ("train", "eval"):
            samples = self.samples(split)
            inputs = self.encode([s["input"] for s in samples], tokenizer, seq_len)[0]
            labels = self.encode([s["output"] for s in samples], tokenizer, seq_len)[0]
            labels[:, self.options.toy_word_len:] = IGNORE_LABEL  # every letter supervised, padding masked
            out.append(ArrayDataset(inputs, labels, np.zeros(len(samples), np.float32), samples))
        return out[0], out[1]

    def encode(self, queries, tokenizer, seq_len, retriever=None):
        ids = np.zeros((len(queries), seq_len), np.int32)
        for i, q in enumerate(queries):
            ids[i, :len(q)] = tokenizer.encode(q.lower())
        return ids, [[] for _ in queries]

    def decode(self, tokens, tokenizer, query):
        return tokenizer.decode(np.asarray(tokens)[:len(query)]).upper()


@dataclass(frozen=True)
class ClashingOptions:
    seq_len: int = 3  # a shared data key: not allowed as a task's own


class ClashingTask(ToyTask):
    Options = ClashingOptions
