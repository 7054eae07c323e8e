"""Small benchmark files written in their published layouts: the original releases (`write_release`)
and the Hugging Face exports (`write_export`, parquet or JSONL). The same rows go into both, so a
loader must give the same records from either."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

WORDS = "list file error items text fox dog round trip unicode container number mutable sequence".split()
SUBJECTS = ("abstract_algebra", "world_religions")


def _word(i: int) -> str:
    return WORDS[i % len(WORDS)]


def mmlu_rows(subject: str, split: str, n: int) -> list[dict]:
    return [{"question": f"In {subject} {split} {i}, which {_word(i)} is {_word(i + 3)}?",
             "choices": [f"the {_word(i + k)}" for k in range(4)], "answer": (i * 3 + len(subject)) % 4, "subject": subject}
            for i in range(n)]


def arc_rows(split: str, n: int) -> list[dict]:
    labels = lambda i: list("ABCD") if i % 3 else ["1", "2", "3", "4"]  # noqa: E731 - ARC has both kinds of key
    return [{"id": f"arc-{split}-{i}", "question": f"Which {_word(i)} goes with a {_word(i + 1)}?",
             "choices": {"text": [f"a {_word(i + k)}" for k in range(4)], "label": labels(i)},
             "answerKey": labels(i)[i % 4]} for i in range(n)]


def hellaswag_rows(n: int) -> list[dict]:
    return [{"ind": i, "activity_label": f"Making a {_word(i)}", "ctx_a": f"A person picks up the {_word(i)}.",
             "ctx_b": f"they [title] turn the {_word(i + 1)}", "ctx": "", "source_id": f"s{i}", "split": "val",
             "split_type": "indomain", "endings": [f"and the {_word(i + k)} falls [step] down." for k in range(4)],
             "label": str(i % 4)} for i in range(n)]


def winogrande_rows(n: int) -> list[dict]:
    return [{"sentence": f"The {_word(i)} did not fit in the {_word(i + 1)} because _ was too {_word(i + 2)}.",
             "option1": _word(i), "option2": _word(i + 1), "answer": str(1 + i % 2)} for i in range(n)]


def piqa_rows(n: int) -> list[dict]:
    return [{"goal": f"To clean a {_word(i)}", "sol1": f"use the {_word(i + 1)}", "sol2": f"use the {_word(i + 2)}",
             "label": i % 2} for i in range(n)]


def boolq_rows(n: int) -> list[dict]:
    return [{"question": f"is the {_word(i)} a {_word(i + 1)}", "passage": f"The {_word(i)} is a kind of {_word(i + 2)}.",
             "idx": i, "label": i % 2} for i in range(n)]


def truthfulqa_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        mc1 = [f"The {_word(i + k)} is true." for k in range(4)]
        mc2 = [f"It is the {_word(i + k)}." for k in range(5)]
        rows.append({"question": f"What happens to the {_word(i)}?",
                     "mc1_targets": {"choices": mc1, "labels": [1, 0, 0, 0]},
                     "mc2_targets": {"choices": mc2, "labels": [1, 1, 0, 0, 0] if i % 2 else [1, 0, 0, 0, 0]}})
    return rows


def openbookqa_rows(split: str, n: int) -> list[dict]:
    return [{"id": f"obqa-{split}-{i}", "question_stem": f"A {_word(i)} needs",
             "choices": {"text": [f"a {_word(i + k)}" for k in range(4)], "label": list("ABCD")},
             "answerKey": "ABCD"[(i + 1) % 4]} for i in range(n)]


def gsm8k_rows(split: str, n: int) -> list[dict]:
    return [{"question": f"Tom has {i + 2} {_word(i)}s and buys {i + 3} more. How many does he have?",
             "answer": f"He has {i + 2} + {i + 3} = <<{i + 2}+{i + 3}={2 * i + 5}>>{2 * i + 5} now.\n#### {2 * i + 5}"}
            for i in range(n)]


def triviaqa_rows(n: int) -> list[dict]:
    return [{"question": f"Which {_word(i)} is round", "question_id": f"tq{i}",
             "answer": {"aliases": [_word(i + 1), f"The {_word(i + 1)}"], "value": _word(i + 1),
                        "normalized_aliases": [_word(i + 1)], "normalized_value": _word(i + 1)}} for i in range(n)]


def nq_open_rows(n: int) -> list[dict]:
    return [{"question": f"who wrote the {_word(i)}", "answer": [_word(i + 2), f"a {_word(i + 3)}"]} for i in range(n)]


def humaneval_rows() -> list[dict]:
    rows = []
    # (name, right body, wrong body, the right result for (2, 3))
    for i, (name, body, wrong, expected) in enumerate([("add", "return a + b", "return a - b", 5),
                                                        ("mul", "return a * b", "return a", 6),
                                                        ("biggest", "return max(a, b)", "return min(a, b)", 3)]):
        rows.append({"task_id": f"HumanEval/{i}", "entry_point": name,
                     "prompt": f"def {name}(a, b):\n    \"\"\"{name} of two numbers\"\"\"\n",
                     "canonical_solution": f"    {body}\n", "wrong": f"    {wrong}\n",
                     "test": f"def check(candidate):\n    assert candidate(2, 3) == {expected}\n"})
    return rows


def mbpp_rows() -> list[dict]:
    rows = []
    for task_id in (2, 3, 4, 11, 12):
        rows.append({"task_id": task_id, "text": f"Write a function to return {task_id} times x.",
                     "code": f"def times_{task_id}(x):\n    return {task_id} * x", "test_setup_code": "",
                     "test_list": [f"assert times_{task_id}({k}) == {task_id * k}" for k in (1, 2, 3)],
                     "challenge_test_list": []})
    return rows


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _table(path: Path, rows: list[dict], fmt: str) -> Path:
    if fmt == "jsonl":
        return _jsonl(path.with_suffix(".jsonl"), rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))
    return path.with_suffix(".parquet")


N = 6


def export_rows() -> dict[str, dict[str, list[dict]]]:
    """benchmark -> split -> rows, in the Hugging Face export's fields."""
    return {"mmlu": {f"{s}/{split}": mmlu_rows(s, split, N if split == "test" else 5) for s in SUBJECTS
                     for split in ("test", "dev")},
            "ai2_arc": {"ARC-Easy/test": arc_rows("test", N), "ARC-Easy/train": arc_rows("train", 8)},
            "hellaswag": {"data/validation": hellaswag_rows(N)}, "winogrande": {"winogrande_xl/validation": winogrande_rows(N)},
            "piqa": {"data/validation": piqa_rows(N)}, "boolq": {"boolq/validation": boolq_rows(N)},
            "truthfulqa": {"multiple_choice/validation": truthfulqa_rows(N)},
            "openbookqa": {"main/test": openbookqa_rows("test", N)},
            "gsm8k": {"main/test": gsm8k_rows("test", 4), "main/train": gsm8k_rows("train", 10)},
            "triviaqa": {"rc.nocontext/validation": triviaqa_rows(N)}, "nq_open": {"nq_open/validation": nq_open_rows(N)},
            "humaneval": {"openai_humaneval/test": [{k: v for k, v in r.items() if k != "wrong"} for r in humaneval_rows()]},
            "mbpp": {"full/test": [r for r in mbpp_rows() if r["task_id"] >= 11],
                     "full/prompt": [r for r in mbpp_rows() if r["task_id"] < 11]}}


def write_export(root: Path, fmt: str = "parquet") -> dict[str, Path]:
    """The exports' layout (DIR/benchmark/config/split-00000-of-00001.parquet); returns split -> file."""
    files = {}
    for bench, splits in export_rows().items():
        for split, rows in splits.items():
            files[f"{bench}/{split}"] = _table(root / bench / f"{split}-00000-of-00001", rows, fmt)
    return files


def write_release(root: Path) -> None:
    """The original releases' layouts for the same rows."""
    import csv

    for subject in SUBJECTS:
        for split in ("test", "dev"):
            path = root / "mmlu" / "data" / split / f"{subject}_{split}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as f:
                for r in mmlu_rows(subject, split, N if split == "test" else 5):
                    csv.writer(f).writerow([r["question"], *r["choices"], "ABCD"[r["answer"]]])
    release_arc = lambda rows: [{"id": r["id"], "answerKey": r["answerKey"], "question": {  # noqa: E731
        "stem": r["question"], "choices": [{"text": t, "label": lab} for t, lab in zip(r["choices"]["text"], r["choices"]["label"])]}}
        for r in rows]
    _jsonl(root / "ai2_arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl", release_arc(arc_rows("test", N)))
    _jsonl(root / "ai2_arc" / "ARC-Easy" / "ARC-Easy-Train.jsonl", release_arc(arc_rows("train", 8)))
    _jsonl(root / "hellaswag" / "hellaswag_val.jsonl", [r | {"label": int(r["label"])} for r in hellaswag_rows(N)])
    _jsonl(root / "winogrande" / "dev.jsonl", winogrande_rows(N))
    _jsonl(root / "piqa" / "valid.jsonl", [{k: v for k, v in r.items() if k != "label"} for r in piqa_rows(N)])
    (root / "piqa" / "valid-labels.lst").write_text("".join(f"{r['label']}\n" for r in piqa_rows(N)))
    _jsonl(root / "boolq" / "dev.jsonl", [{"question": r["question"], "passage": r["passage"], "title": "t",
                                           "answer": bool(r["label"])} for r in boolq_rows(N)])
    (root / "truthfulqa").mkdir(parents=True, exist_ok=True)
    (root / "truthfulqa" / "mc_task.json").write_text(json.dumps([
        {"question": r["question"], "mc1_targets": dict(zip(r["mc1_targets"]["choices"], r["mc1_targets"]["labels"])),
         "mc2_targets": dict(zip(r["mc2_targets"]["choices"], r["mc2_targets"]["labels"]))} for r in truthfulqa_rows(N)]))
    _jsonl(root / "openbookqa" / "Main" / "test.jsonl", [
        {"id": r["id"], "answerKey": r["answerKey"], "question": {"stem": r["question_stem"], "choices": [
            {"text": t, "label": lab} for t, lab in zip(r["choices"]["text"], r["choices"]["label"])]}}
        for r in openbookqa_rows("test", N)])
    _jsonl(root / "gsm8k" / "test.jsonl", gsm8k_rows("test", 4))
    _jsonl(root / "gsm8k" / "train.jsonl", gsm8k_rows("train", 10))
    (root / "triviaqa").mkdir(parents=True, exist_ok=True)
    (root / "triviaqa" / "unfiltered-web-dev.json").write_text(json.dumps({"Data": [
        {"Question": r["question"], "Answer": {"Aliases": r["answer"]["aliases"], "Value": r["answer"]["value"]}}
        for r in triviaqa_rows(N)]}))
    _jsonl(root / "nq_open" / "NQ-open.dev.jsonl", nq_open_rows(N))
    (root / "humaneval").mkdir(parents=True, exist_ok=True)
    (root / "humaneval" / "HumanEval.jsonl.gz").write_bytes(gzip.compress("".join(
        json.dumps({k: v for k, v in r.items() if k != "wrong"}) + "\n" for r in humaneval_rows()).encode()))
    _jsonl(root / "mbpp" / "mbpp.jsonl", mbpp_rows())
