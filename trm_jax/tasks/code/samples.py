"""Code task: answer a query about a definition that the query alone does not contain.

A knowledge base of small Python facts (`def kav(x): return x+3`, `tup = "bird"`) is
generated from a seed. A sample asks about one fact (`kav(4)` -> `7`,
`len(tup)` -> `4`); the fact itself is not in the query, so without retrieval the
model can only guess, and with the fact as context the answer is a short computation.

Each fact has a unique made-up name. Facts are split once into training facts and
held-out facts: the eval split asks only about held-out names, so a model that
memorised name -> behaviour from training fails there, and one that reads the
context does not. Every fact and query is valid Python, so answers can be checked by
executing them.

Difficulty picks which fact kinds appear (level <= round(3 * difficulty)):
  0 add     def f(x): return x+k       query f(a)        a, k single digits
  1 sub/mul def f(x): return x-k / x*k query f(a)
  2 affine  def f(x): return x*m+b     query f(a)
  3 string  f = "word"                 query f[::-1] | len(f) | f.upper() | f[i]
"""

from __future__ import annotations

import builtins
import dataclasses
import keyword
from dataclasses import dataclass

import numpy as np

from trm_jax.data.datasets import SPLITS
from trm_jax.errors import TRMError

NUM_LEVELS = 4
DEFAULT_NUM_FACTS = 512
HELD_OUT_FRACTION = 0.25
_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Fact:
    fact_id: int
    name: str
    level: int
    op: str  # "+", "-", "*", "affine", "str"
    a: int = 0  # constant (k, or m for affine)
    b: int = 0  # affine offset
    word: str = ""
    held_out: bool = False

    @property
    def text(self) -> str:
        if self.op == "str":
            return f'{self.name} = "{self.word}"'
        if self.op == "affine":
            return f"def {self.name}(x): return x*{self.a}+{self.b}"
        return f"def {self.name}(x): return x{self.op}{self.a}"


def _names() -> list[str]:
    """Three-letter consonant-vowel-consonant names that are not Python keywords or builtins."""
    taken = set(dir(builtins))
    return [c1 + v + c2 for c1 in _CONSONANTS for v in _VOWELS for c2 in _CONSONANTS
            if not keyword.iskeyword(c1 + v + c2) and c1 + v + c2 not in taken]


def code_task_facts(seed: int = 0, num_facts: int = DEFAULT_NUM_FACTS) -> list[Fact]:
    """The knowledge base: `num_facts` facts with unique names, a quarter of them held out."""
    names = _names()
    if not NUM_LEVELS * 2 <= num_facts <= len(names):
        raise TRMError(f"code task num_facts must be in [{NUM_LEVELS * 2}, {len(names)}], got {num_facts}")
    rng = np.random.default_rng([int(seed), 0xC0DE, num_facts])
    chosen = rng.choice(len(names), size=num_facts, replace=False)
    levels = np.arange(num_facts) % NUM_LEVELS
    # Hold out the same fraction of every level, so the eval split covers all kinds.
    held = np.zeros(num_facts, dtype=bool)
    for lvl in range(NUM_LEVELS):
        idx = np.flatnonzero(levels == lvl)
        k = max(1, int(round(len(idx) * HELD_OUT_FRACTION)))
        held[rng.choice(idx, size=k, replace=False)] = True
    facts = []
    for i in range(num_facts):
        name, level = names[chosen[i]], int(levels[i])
        if level == 0:
            f = Fact(i, name, 0, "+", a=int(rng.integers(1, 10)))
        elif level == 1:
            f = Fact(i, name, 1, str(rng.choice(["-", "*"])), a=int(rng.integers(2, 10)))
        elif level == 2:
            f = Fact(i, name, 2, "affine", a=int(rng.integers(2, 6)), b=int(rng.integers(1, 10)))
        else:
            word = "".join(rng.choice(list(_LETTERS), size=int(rng.integers(3, 6))))
            f = Fact(i, name, 3, "str", word=word)
        facts.append(dataclasses.replace(f, held_out=bool(held[i])))
    return facts


def code_task_corpus(seed: int = 0, num_facts: int | None = None) -> list[str]:
    """The documents a retriever should index: every fact's text, train and held-out alike (a run's:
    `get_task(config).facts()`)."""
    return [f.text for f in code_task_facts(int(seed), num_facts or DEFAULT_NUM_FACTS)]


def _query(fact: Fact, rng: np.random.Generator) -> tuple[str, str]:
    """A (query, answer) pair about `fact`."""
    if fact.op == "str":
        w = fact.word
        form = int(rng.integers(4))
        if form == 0:
            return f"{fact.name}[::-1]", w[::-1]
        if form == 1:
            return f"len({fact.name})", str(len(w))
        if form == 2:
            return f"{fact.name}.upper()", w.upper()
        i = int(rng.integers(len(w)))
        return f"{fact.name}[{i}]", w[i]
    x = int(rng.integers(10))
    if fact.op == "+":
        y = x + fact.a
    elif fact.op == "-":
        y = x - fact.a
    elif fact.op == "*":
        y = x * fact.a
    else:
        y = x * fact.a + fact.b
    return f"{fact.name}({x})", str(y)


def max_level(difficulty: float) -> int:
    return int(round(float(difficulty) * (NUM_LEVELS - 1)))


def generate_code_samples(n: int, *, seed: int = 0, split: str = "train", difficulty: float = 0.5,
                          num_facts: int = DEFAULT_NUM_FACTS, context: str = "none") -> list[dict]:
    """`n` samples {"context", "query", "answer", "fact", "fact_id", "difficulty"}.

    split "train" asks about training facts, "eval" about held-out ones. `context`
    "none" leaves the context empty (the input is the query alone; RAG fills it);
    "oracle" puts the needed fact there (an upper bound for retrieval).
    """
    if split not in SPLITS:
        raise TRMError(f"code task split must be one of {SPLITS}, got {split!r}")
    if context not in ("none", "oracle"):
        raise TRMError(f"code task context must be 'none' or 'oracle', got {context!r}")
    if not 0.0 <= difficulty <= 1.0:
        raise TRMError(f"difficulty must be in [0, 1], got {difficulty}")
    top = max_level(difficulty)
    pool = [f for f in code_task_facts(seed, num_facts)
            if f.held_out == (split == "eval") and f.level <= top]
    rng = np.random.default_rng([int(seed), 0x5A3, SPLITS.index(split), int(round(difficulty * 1e6))])
    picks = rng.integers(len(pool), size=n)
    samples = []
    for i in picks:
        fact = pool[int(i)]
        query, answer = _query(fact, rng)
        samples.append({
            "context": fact.text if context == "oracle" else "",
            "query": query,
            "answer": answer,
            "fact": fact.text,
            "fact_id": fact.fact_id,
            "difficulty": fact.level / (NUM_LEVELS - 1),
        })
    return samples
