"""Prompts for evaluation: zero-shot, few-shot in-context examples (Brown et al., arXiv 2005.14165),
chain of thought (worked solutions in the examples, Wei et al., arXiv 2201.11903; or the zero-shot
trigger "Let's think step by step.", Kojima et al., arXiv 2205.11916), and the checkpoint's chat
template, where each in-context example becomes a user turn and an assistant turn.

Few-shot examples are drawn per record from a seeded generator, so a run is reproducible and each
record sees its own sample (never itself).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from llmkit.eval.task_spec import TaskSpec

COT_TRIGGER = "Let's think step by step."
COT_ANSWER_REGEX = r"[Tt]he answer is\s*(.+?)\s*(?:\.\s|\.$|\n|$)"


@dataclass
class PromptOptions:
    shots: int = 0
    seed: int = 1234
    chat: bool = False  # wrap in the checkpoint's chat template
    cot: bool = False
    system: str | None = None


def fewshot_examples(task: TaskSpec, index: int, shots: int, seed: int) -> list[dict]:
    if shots <= 0:
        return []
    pool = task.fewshot_records if task.fewshot_records is not None else task.records[:index] + task.records[index + 1:]
    rng = random.Random(seed * 1_000_003 + index)
    return rng.sample(pool, min(shots, len(pool)))


def example_answer(task: TaskSpec, record: dict, cot: bool) -> str:
    """What an in-context example shows after its question."""
    if task.type == "multiple_choice":
        return task.choice_texts(record)[task.gold_index(record)]
    answer = task.references(record)[0]
    if cot and task.rationale:
        return f"{task.render(task.rationale, record)} The answer is {answer}."
    return answer


def build_context(task: TaskSpec, record: dict, index: int, options: PromptOptions, tokenizer,
                  question_transform: Callable[[str], str] | None = None) -> str:
    """The text the model continues: in-context examples, then this record's question (with the
    chain-of-thought trigger when asked for and there are no worked examples to imitate)."""
    shots = fewshot_examples(task, index, options.shots, options.seed)
    question = task.render(task.prompt, record)
    if question_transform:
        question = question_transform(question)
    trigger = options.cot and task.type == "generate" and not (shots and task.rationale)
    if not options.chat:
        parts = [task.render(task.prompt, ex) + task.target_delimiter + example_answer(task, ex, options.cot)
                 for ex in shots]
        parts.append(question + (task.target_delimiter + COT_TRIGGER if trigger else ""))
        return task.fewshot_separator.join(parts)
    messages = [{"role": "system", "content": options.system}] if options.system else []
    for ex in shots:
        messages += [{"role": "user", "content": task.render(task.prompt, ex)},
                     {"role": "assistant", "content": example_answer(task, ex, options.cot)}]
    messages.append({"role": "user", "content": question + (" " + COT_TRIGGER if trigger else "")})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def choice_continuation(task: TaskSpec, choice: str, chat: bool) -> str:
    """A choice as scored after the context: in chat the assistant turn begins with it directly."""
    return choice if chat else task.target_delimiter + choice
