"""The code task: answer a query about a generated Python fact that the query does not contain; retrieval
(or data.code_context: oracle) supplies the fact. The facts and samples: trm_jax.tasks.code.samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from trm_jax.tasks.base import Task, require, sample_texts
from trm_jax.tasks.code.samples import DEFAULT_NUM_FACTS, code_task_corpus, generate_code_samples


@dataclass(frozen=True)
class CodeOptions:
    code_context: Literal["none", "oracle"] = "none"  # code task: "oracle" puts the needed fact in the input
    code_num_facts: int = DEFAULT_NUM_FACTS  # code task: size of the knowledge base (a quarter is held out for eval)


class CodeTask(Task):
    Options = CodeOptions
    uses_retrieval = True

    def validate(self) -> None:
        n = self.options.code_num_facts
        require(8 <= n <= 1600, "data.code_num_facts", f"must be in [8, 1600], got {n}")

    def samples(self, split: str, difficulty: Optional[float] = None) -> list[dict]:
        """Generated {"context", "query", "answer", "fact", "fact_id", "difficulty"} dicts; eval asks about
        held-out facts."""
        _, difficulty = self.stage(None, difficulty)
        return generate_code_samples(self.split_size(split), seed=self.config.seed, split=split,
                                     difficulty=difficulty, num_facts=self.options.code_num_facts,
                                     context=self.options.code_context)

    def tokenizer_corpus(self) -> list[str]:
        # difficulty 1 draws every kind of fact; the facts themselves are what retrieval puts in the input
        return sample_texts(self.samples("train", 1.0)) + self.facts()

    def retrieval_corpus(self) -> tuple[list[str], list[dict]]:
        texts = self.facts()
        return texts, [{"source": "code_task_corpus", "index": i} for i in range(len(texts))]

    def facts(self) -> list[str]:
        return code_task_corpus(self.config.seed, self.options.code_num_facts)
