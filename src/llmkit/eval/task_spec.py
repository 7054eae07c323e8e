"""Evaluation tasks declared in small YAML files that point at local JSONL, so users bring standard
benchmarks (HellaSwag, ARC, BoolQ, SQuAD, GSM8K, WMT...) in their own files. Templates are Python
format strings over each record's fields.

    name: my-arc                      # defaults to the file's stem
    type: multiple_choice             # perplexity | multiple_choice | generate | canary | bias | refusal
    data: arc_test.jsonl              # relative to the YAML file
    fewshot_data: arc_train.jsonl     # in-context examples (default: the other records of `data`)
    prompt: "Question: {question}\\nAnswer:"
    choices: choices                  # multiple_choice: the field holding the list of choices, or a
                                      # literal list (verbalizers: [A, B, C, D]) whose items may be
                                      # templates over the record ("{option1}")
    gold: label                       # multiple_choice: the right choice (index, text, or letter A-Z)
    description: "The following are questions about {subject}.\\n\\n"  # before the examples
    fewshot_sampler: per_record       # per_record | first_n | lm_eval (lm-eval's seeded draw, in record order)
    answer: "{answer}"                # generate: the reference (a template; a list field gives several)
    rationale: "{steps}"              # chain of thought: the worked solution shown in few-shot examples
    fewshot_target: "{answer}"        # what an in-context example shows after its question (default:
                                      # the right choice, or the first reference)
    metrics: [exact_match, f1]        # generate: exact_match f1 rouge_l bleu chrf
    answer_regex: "answer is (\\S+)"  # generate: what to extract from the output before scoring
    stop: ["\\n"]                     # generate: cut the output at these strings
    max_new_tokens: 32
    target_delimiter: " "             # between prompt and answer (few-shot examples and choices)
    fewshot_separator: "\\n\\n"
    text_field: text                  # perplexity: the field holding each text

Types beyond the benchmark shapes (security checks; see llmkit.eval.security):
    canary    records {prefix, secret}: is the planted secret extracted by prompting with its prefix?
    bias      records {template, groups: [a, b], continuation}: the log-likelihood gap between groups
    refusal   records {prompt, harmful: bool}: refusal rate on harmful, over-refusal on benign prompts
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.eval.metrics import GENERATIVE_METRICS

TASK_TYPES = ("perplexity", "multiple_choice", "generate", "code", "canary", "bias", "refusal", "safety_probes")
FEWSHOT_SAMPLERS = ("per_record", "first_n", "lm_eval")


@dataclass
class TaskSpec:
    name: str
    type: str
    records: list[dict] = field(repr=False)
    fewshot_records: list[dict] | None = field(default=None, repr=False)
    prompt: str = "{prompt}"
    choices: str | list[str] = "choices"
    gold: str = "gold"
    description: str = ""
    fewshot_sampler: str = "per_record"
    # multiple_choice with one context per choice and one continuation (WinoGrande's partial scoring):
    # the choices are the contexts, the record's `continuation` field is scored after each
    multiple_input: bool = False
    default_shots: int = 0  # in-context examples when --shots is not given (MMLU: 5)
    group: str | None = None  # an aggregate this task is part of (mmlu)
    # generate/code tasks defined in Python (llmkit.eval.benchmarks): (output text, record) -> metrics
    scorer: object = field(default=None, repr=False, compare=False)
    code: object = field(default=None, repr=False, compare=False)  # code tasks: (completion, record) -> program
    answer: str = "{answer}"
    rationale: str | None = None
    fewshot_target: str | None = None
    metrics: list[str] = field(default_factory=lambda: ["exact_match"])
    answer_regex: str | None = None
    stop: list[str] = field(default_factory=lambda: ["\n"])
    max_new_tokens: int = 32
    target_delimiter: str = " "
    fewshot_separator: str = "\n\n"
    text_field: str = "text"

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise LlmkitError(f"task {self.name}: unknown type {self.type!r}; choose one of {', '.join(TASK_TYPES)}")
        if not self.records:
            raise LlmkitError(f"task {self.name}: no records")
        if self.fewshot_sampler not in FEWSHOT_SAMPLERS:
            raise LlmkitError(f"task {self.name}: unknown fewshot_sampler {self.fewshot_sampler!r}; "
                              f"choose one of {', '.join(FEWSHOT_SAMPLERS)}")
        if isinstance(self.choices, (list, tuple)) and len(self.choices) < 2:
            raise LlmkitError(f"task {self.name}: a literal choices list needs at least two items")
        if not isinstance(self.choices, (str, list, tuple)):
            raise LlmkitError(f"task {self.name}: choices must be a field name or a list, not {type(self.choices).__name__}")
        unknown = [m for m in self.metrics if m not in GENERATIVE_METRICS]
        if unknown:
            raise LlmkitError(f"task {self.name}: unknown metrics {', '.join(unknown)}; "
                              f"choose from {', '.join(GENERATIVE_METRICS)}")

    def render(self, template: str, record: dict) -> str:
        try:
            return template.format(**record)
        except KeyError as missing:
            raise LlmkitError(f"task {self.name}: template {template!r} uses field {missing} that a record "
                              f"lacks (fields: {', '.join(record)})") from None

    def references(self, record: dict) -> list[str]:
        """The reference answers: a template, or a field name holding one answer or a list of them."""
        value = record.get(self.answer) if self.answer in record else self.render(self.answer, record)
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    def choice_texts(self, record: dict) -> list[str]:
        """The choices of a record: a literal list (each item may be a template over the record) or
        the list held in the record's `choices` field."""
        if isinstance(self.choices, (list, tuple)):
            return [self.render(str(c), record) if "{" in str(c) else str(c) for c in self.choices]
        choices = record.get(self.choices)
        if not isinstance(choices, list) or len(choices) < 2:
            raise LlmkitError(f"task {self.name}: field {self.choices!r} must hold a list of at least two choices "
                              "(or give `choices:` as a literal list, e.g. [A, B, C, D])")
        return [str(c) for c in choices]

    def gold_index(self, record: dict) -> int:
        """The right choice: an index, the choice's text, or a letter (A = 0) when the choices are not letters."""
        gold, choices = record.get(self.gold), self.choice_texts(record)
        if isinstance(gold, bool):
            gold = int(gold)
        if isinstance(gold, int) and 0 <= gold < len(choices):
            return gold
        if str(gold) in choices:
            return choices.index(str(gold))
        text = str(gold).strip()
        if text.isdigit() and 0 <= int(text) < len(choices):
            return int(text)
        if len(text) == 1 and text.isalpha() and 0 <= ord(text.upper()) - ord("A") < len(choices):
            return ord(text.upper()) - ord("A")
        raise LlmkitError(f"task {self.name}: gold {gold!r} (field {self.gold!r}) is neither an index, a letter, "
                          "nor one of the choices")


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise LlmkitError(f"task data {path} does not exist")
    return parse_jsonl(path.read_text(), path)


def parse_jsonl(text: str, path: Path) -> list[dict]:
    """One JSON object per non-blank line; a bad line names its file and number."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise LlmkitError(f"{path}:{number}: not JSON ({error.msg}); each line must be one JSON object") from None
    return records


def load_task_file(path: str | Path) -> TaskSpec:
    """A TaskSpec from YAML; data paths are relative to the YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"task file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(TaskSpec)} - {"records", "fewshot_records", "scorer", "code"}
    unknown = set(raw) - known - {"data", "fewshot_data"}
    if unknown:
        raise LlmkitError(f"{path}: unknown keys {', '.join(sorted(unknown))}; known: data, fewshot_data, {', '.join(sorted(known))}")
    if "data" not in raw or "type" not in raw:
        raise LlmkitError(f"{path}: a task needs `type:` and `data:` (a JSONL file)")
    options = {k: v for k, v in raw.items() if k in known}
    options.setdefault("name", path.stem)
    fewshot = read_jsonl(path.parent / raw["fewshot_data"]) if raw.get("fewshot_data") else None
    return TaskSpec(records=read_jsonl(path.parent / raw["data"]), fewshot_records=fewshot, **options)
