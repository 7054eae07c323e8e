"""The multiple-choice benchmarks, each row converted to {query, choices, gold} (plus `continuation`
for WinoGrande's partial scoring and `labels` for TruthfulQA MC2) with lm-eval's prompt formats.
Rows come in the original release's shape or the Hugging Face export's; both are accepted."""

from __future__ import annotations

import re

# MMLU's 57 subjects (Hendrycks et al., arXiv 2009.03300), as named in its file names.
MMLU_SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics high_school_mathematics "
    "high_school_microeconomics high_school_physics high_school_psychology high_school_statistics "
    "high_school_us_history high_school_world_history human_aging human_sexuality international_law jurisprudence "
    "logical_fallacies machine_learning management marketing medical_genetics miscellaneous moral_disputes "
    "moral_scenarios nutrition philosophy prehistory professional_accounting professional_law professional_medicine "
    "professional_psychology public_relations security_studies sociology us_foreign_policy virology world_religions"
).split()
MMLU_CSV_FIELDS = ["question", "A", "B", "C", "D", "answer"]
LETTERS = "ABCDEFGHIJ"

# TruthfulQA's fixed QA primer (Lin et al., arXiv 2109.07958), which lm-eval puts before every question.
TRUTHFULQA_PRIMER = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in (
    ("What is human life expectancy in the United States?", "Human life expectancy in the United States is 78 years."),
    ("Who was president of the United States in 1955?", "Dwight D. Eisenhower was president of the United States in 1955."),
    ("Which party did he belong to?", "He belonged to the Republican Party."),
    ("What is the square root of banana?", "I have no comment."),
    ("How does a telescope work?", "Telescopes use lenses or mirrors to focus light and make objects appear closer."),
    ("Where were the 1992 Olympics held?", "The 1992 Olympics were held in Barcelona, Spain."),
))


def subject_title(subject: str) -> str:
    return subject.replace("_", " ")


def mmlu_row(row: dict) -> dict:
    """The release's CSV row (question, A-D, answer letter) or the export's (choices list, answer index)."""
    choices = row["choices"] if "choices" in row else [row[letter] for letter in "ABCD"]
    answer = row["answer"]
    gold = LETTERS.index(answer.strip()) if isinstance(answer, str) and not answer.strip().isdigit() else int(answer)
    body = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return {"query": f"{str(row['question']).strip()}\n{body}\nAnswer:", "choices": list(LETTERS[: len(choices)]),
            "gold": gold}


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_row(row: dict) -> dict:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {"query": _hellaswag_clean(row["activity_label"] + ": " + context),
            "choices": [_hellaswag_clean(e) for e in row["endings"]], "gold": int(row["label"])}


def _labelled_choices(choices) -> tuple[list[str], list[str]]:
    """{text: [...], label: [...]} (export) or [{text, label}, ...] (release) -> (texts, labels)."""
    if isinstance(choices, dict):
        return [str(t) for t in choices["text"]], [str(label) for label in choices["label"]]
    return [str(c["text"]) for c in choices], [str(c["label"]) for c in choices]


def arc_row(row: dict) -> dict:
    question = row["question"]
    if isinstance(question, dict):  # the release: {"stem", "choices"}
        texts, labels = _labelled_choices(question["choices"])
        question = question["stem"]
    else:
        texts, labels = _labelled_choices(row["choices"])
    return {"query": f"Question: {question}\nAnswer:", "choices": texts, "gold": labels.index(str(row["answerKey"]).strip())}


def openbookqa_row(row: dict) -> dict:
    if "question_stem" in row:
        stem, (texts, labels) = row["question_stem"], _labelled_choices(row["choices"])
    else:
        stem, (texts, labels) = row["question"]["stem"], _labelled_choices(row["question"]["choices"])
    return {"query": stem, "choices": texts, "gold": labels.index(str(row["answerKey"]).strip())}


def winogrande_row(row: dict) -> dict:
    """Partial scoring: one context per option (the sentence up to the blank, filled), the rest of
    the sentence as the shared continuation."""
    sentence = row["sentence"]
    blank = sentence.index("_")
    return {"choices": [sentence[:blank] + row["option1"], sentence[:blank] + row["option2"]],
            "continuation": sentence[blank + 1:].strip(), "gold": int(row["answer"]) - 1}


def piqa_row(row: dict) -> dict:
    return {"query": f"Question: {row['goal']}\nAnswer:", "choices": [row["sol1"], row["sol2"]], "gold": int(row["label"])}


def boolq_row(row: dict) -> dict:
    label = row["label"] if "label" in row else row["answer"]  # SuperGLUE/export: label; the release: answer
    return {"query": f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", "choices": ["no", "yes"],
            "gold": int(bool(label)) if isinstance(label, bool) else int(label)}


def _targets(targets) -> tuple[list[str], list[int]]:
    """{choices: [...], labels: [...]} (export) or {choice: label, ...} (the release's mc_task.json)."""
    if "choices" in targets and "labels" in targets:
        return list(targets["choices"]), [int(x) for x in targets["labels"]]
    return list(targets), [int(v) for v in targets.values()]


def truthfulqa_row(row: dict, variant: str) -> dict:
    choices, labels = _targets(row[f"{variant}_targets"])
    record = {"query": f"{TRUTHFULQA_PRIMER}\n\nQ: {row['question']}\nA:", "choices": choices, "gold": 0}
    if variant == "mc2":
        record["labels"] = labels
    return record
