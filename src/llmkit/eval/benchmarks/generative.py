"""The generative benchmarks, with lm-eval's prompts, stop strings, answer extraction and matching:
GSM8K (few-shot with the worked answers, zero-shot chain of thought, and 8-shot chain of thought
built from the train split's first eight worked solutions), TriviaQA and NaturalQuestions-open."""

from __future__ import annotations

import re

from llmkit.eval.benchmarks.scoring import exact_match, regex_filter
from llmkit.eval.metrics import PER_EXAMPLE

GSM8K_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
GSM8K_FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
NQ_IGNORE = (r"\b(?:The |the |An |A |The |a |an )",)


def gsm8k_final(answer: str) -> str:
    return answer.split("####")[-1].strip()


def gsm8k_row(row: dict) -> dict:
    return {"question": row["question"], "answer": row["answer"], "final": gsm8k_final(row["answer"]),
            # the worked solution in "The answer is N." form, without the calculator annotations
            "cot": re.sub(r"<<[^>]*>>", "", row["answer"].split("####")[0]).strip().replace("\n", " ")
            + f" The answer is {gsm8k_final(row['answer'])}."}


def gsm8k_scorer(strict: str):
    def score(output: str, record: dict) -> dict:
        refs = [record["answer"]]
        return {"exact_match_strict": exact_match(regex_filter(output, strict), refs, GSM8K_IGNORE, ignore_case=True),
                "exact_match_flexible": exact_match(regex_filter(output, GSM8K_FLEXIBLE, -1), refs, GSM8K_IGNORE,
                                                    ignore_case=True)}
    return score


def triviaqa_row(row: dict) -> dict:
    answer = row.get("answer") or row.get("Answer")
    aliases = answer.get("aliases") or answer.get("Aliases") or [answer.get("value") or answer.get("Value")]
    return {"question": row.get("question") or row.get("Question"), "aliases": list(aliases)}


def triviaqa_score(output: str, record: dict) -> dict:
    """lm-eval's exact match, and SQuAD token F1 (best over the aliases), which lm-eval does not report."""
    return {"exact_match": exact_match(output.lstrip(), record["aliases"], ignore_case=True, ignore_punctuation=True),
            "f1": PER_EXAMPLE["f1"](output.strip(), record["aliases"])}


def nq_open_row(row: dict) -> dict:
    answers = row["answer"]
    return {"question": row["question"], "answers": list(answers) if isinstance(answers, list) else [answers]}


def nq_open_score(output: str, record: dict) -> dict:
    return {"exact_match": exact_match(output.lstrip(), record["answers"], NQ_IGNORE, ignore_case=True,
                                       ignore_punctuation=True),
            "f1": PER_EXAMPLE["f1"](output.strip(), record["answers"])}
