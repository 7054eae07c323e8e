"""The code benchmarks: HumanEval (complete the function from its signature and docstring; the
program is prompt + completion + the tests + check(entry_point)) and MBPP (lm-eval's prompt: the
task, three of its tests and [BEGIN], three worked examples from the prompt split; the program is
the completion + the tests)."""

from __future__ import annotations

HUMANEVAL_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
MBPP_TEST_IDS = range(11, 511)  # the release's test split: task ids 11-510
MBPP_PROMPT_IDS = (2, 3, 4)  # lm-eval's few-shot examples


def humaneval_row(row: dict) -> dict:
    return {"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"],
            "task_id": row.get("task_id", "")}


def humaneval_program(completion: str, record: dict) -> str:
    return f"{record['prompt']}{completion}\n{record['test']}\ncheck({record['entry_point']})\n"


def mbpp_row(row: dict) -> dict:
    tests = list(row["test_list"])
    return {"text": row.get("text") or row.get("prompt"), "code": row["code"], "tests": tests,
            "test_setup": row.get("test_setup_code") or "", "task_id": int(row["task_id"]),
            "query": f"You are an expert Python programmer, and here is your task: {row.get('text') or row.get('prompt')} "
                     f"Your code should pass these tests:\n\n" + "\n".join(tests[:3]) + "\n[BEGIN]\n"}


def mbpp_program(completion: str, record: dict) -> str:
    return "\n".join([record["test_setup"], completion, *record["tests"]]) + "\n"
