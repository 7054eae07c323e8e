"""Small generated task sets that need no download, each with a verifiable answer, so that every
fine-tuning and alignment method can show it works: SFT raises exact match, DPO raises preference
accuracy, PPO/GRPO raise a verifiable reward. Records carry every shape the tools read:

    {"prompt": ..., "answer": ..., "messages": [user, assistant]}   SFT, RL prompts, exact match
    {"prompt": ..., "chosen": <correct>, "rejected": <wrong>}       preference pairs (DPO, reward models)

Tasks (generated from a seed, train and test drawn disjointly):
    recall      key-value recall: "Remember: red=7, blue=3, green=9. What is blue?" -> "3"
    arithmetic  two-digit addition: "What is 23 + 58?" -> "81"
    copy        repeat a list of words: "Repeat: cat sun tree" -> "cat sun tree"
    sort        sort three numbers: "Sort: 42 7 19" -> "7 19 42"
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_write_text

KEYS = ["red", "blue", "green", "gold", "gray", "pink", "black", "white", "brown", "violet"]
WORDS = ["cat", "sun", "tree", "book", "river", "stone", "cloud", "lamp", "door", "bird", "fish", "road",
         "milk", "star", "leaf", "rain", "snow", "fire", "ship", "bell"]


def _recall(rng: random.Random) -> tuple[str, str]:
    keys = rng.sample(KEYS, 3)
    values = [str(rng.randrange(10)) for _ in keys]
    asked = rng.randrange(3)
    facts = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
    return f"Remember: {facts}. What is {keys[asked]}?", values[asked]


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randrange(10, 50), rng.randrange(10, 50)
    return f"What is {a} + {b}?", str(a + b)


def _copy(rng: random.Random) -> tuple[str, str]:
    words = " ".join(rng.sample(WORDS, 3))
    return f"Repeat: {words}", words


def _sort(rng: random.Random) -> tuple[str, str]:
    numbers = rng.sample(range(1, 100), 3)
    return f"Sort: {' '.join(map(str, numbers))}", " ".join(map(str, sorted(numbers)))


TASKS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "recall": _recall, "arithmetic": _arithmetic, "copy": _copy, "sort": _sort}


def _wrong(answer: str, rng: random.Random) -> str:
    """A verifiably worse answer: a different number or a shuffled/changed word list."""
    if answer.isdigit():
        return str((int(answer) + rng.randrange(1, 9)) % (10 ** len(answer)) or 1)
    parts = answer.split()
    shuffled = parts[:]
    while shuffled == parts:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def generate_task(name: str, n_train: int, n_test: int, seed: int = 0) -> dict[str, list[dict]]:
    """{"train", "test", "preferences_train", "preferences_test"}: distinct prompts in train and test."""
    if name not in TASKS:
        raise LlmkitError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    rng, seen, examples = random.Random(seed), set(), []
    for _ in range(50 * (n_train + n_test)):
        if len(examples) == n_train + n_test:
            break
        prompt, answer = TASKS[name](rng)
        if prompt not in seen:
            seen.add(prompt)
            examples.append({"prompt": prompt, "answer": answer, "messages": [
                {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    if len(examples) < n_train + n_test:
        raise LlmkitError(f"task {name!r} has only {len(examples)} distinct prompts; ask for fewer")
    prefs = [{"prompt": e["prompt"], "chosen": e["answer"], "rejected": _wrong(e["answer"], rng)} for e in examples]
    return {"train": examples[:n_train], "test": examples[n_train:], "preferences_train": prefs[:n_train],
            "preferences_test": prefs[n_train:]}


def write_task(name: str, out: str | Path, n_train: int = 1000, n_test: int = 100, seed: int = 0) -> dict[str, Path]:
    """OUT/{train,test,preferences_train,preferences_test}.jsonl, written atomically."""
    out = Path(out)
    paths = {}
    for split, records in generate_task(name, n_train, n_test, seed).items():
        paths[split] = out / f"{split}.jsonl"
        atomic_write_text(paths[split], "".join(json.dumps(r) + "\n" for r in records))
    return paths
