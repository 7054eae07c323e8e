"""Prompts for evaluation: zero-shot, few-shot in-context examples (Brown et al., arXiv 2005.14165),
chain of thought (worked solutions in the examples, Wei et al., arXiv 2201.11903; or the zero-shot
trigger "Let's think step by step.", Kojima et al., arXiv 2205.11916), and the checkpoint's chat
template, where each in-context example becomes a user turn and an assistant turn.

Few-shot examples are drawn, by the task's `fewshot_sampler`:
- per_record (default): from a generator seeded by (seed, record index): reproducible, and each
  record sees its own sample (never itself);
- first_n: the first n records of the few-shot split, the same for every record (MMLU's dev examples);
- lm_eval: what lm-evaluation-harness's default sampler draws: one generator seeded once, drawing
  n examples per record in record order (n + 1 with the record itself removed when the examples come
  from the evaluated split), so the same files give the same prompts as lm-eval.
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
    shots: int | None = 0  # None: each task's default_shots
    seed: int = 1234
    chat: bool = False  # wrap in the checkpoint's chat template
    cot: bool = False
    system: str | None = None


def fewshot_examples(task: TaskSpec, index: int, shots: int, seed: int) -> list[dict]:
    if shots <= 0:
        return []
    if task.fewshot_sampler == "lm_eval":
        return _lm_eval_plan(task, shots, seed)[index]
    pool = task.fewshot_records if task.fewshot_records is not None else task.records[:index] + task.records[index + 1:]
    if task.fewshot_sampler == "first_n":
        return pool[:shots]
    rng = random.Random(seed * 1_000_003 + index)
    return rng.sample(pool, min(shots, len(pool)))


def _lm_eval_plan(task: TaskSpec, shots: int, seed: int) -> list[list[dict]]:
    """Every record's examples, drawn in record order from one generator; kept on the task, since
    the draw for record i depends on every draw before it."""
    plans = task.__dict__.setdefault("_lm_eval_plans", {})
    if (shots, seed) not in plans:
        rng, plan = random.Random(seed), []
        pool = task.fewshot_records if task.fewshot_records is not None else task.records
        for record in task.records:
            if task.fewshot_records is not None:
                plan.append(rng.sample(pool, min(shots, len(pool))))
            else:
                drawn = rng.sample(pool, min(shots + 1, len(pool)))
                plan.append([r for r in drawn if r is not record][:shots])
        plans[(shots, seed)] = plan
    return plans[(shots, seed)]


def example_question(task: TaskSpec, record: dict) -> str:
    """An in-context example's question: with one context per choice, the right choice's context."""
    if task.multiple_input:
        return task.choice_texts(record)[task.gold_index(record)]
    return task.render(task.prompt, record)


def example_answer(task: TaskSpec, record: dict, cot: bool) -> str:
    """What an in-context example shows after its question."""
    if task.multiple_input:
        return str(record["continuation"])
    if task.fewshot_target:
        return task.render(task.fewshot_target, record)
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
    return build_contexts(task, record, index, options, tokenizer, question_transform,
                          [task.render(task.prompt, record)])[0]


def build_contexts(task: TaskSpec, record: dict, index: int, options: PromptOptions, tokenizer,
                   question_transform: Callable[[str], str] | None, questions: list[str]) -> list[str]:
    """One context per question after the same examples (several for one-context-per-choice tasks)."""
    shots = fewshot_examples(task, index, options.shots, options.seed)
    if question_transform:
        questions = [question_transform(q) for q in questions]
    return [_context(task, record, shots, options, tokenizer, q) for q in questions]


def _context(task: TaskSpec, record: dict, shots: list[dict], options: PromptOptions, tokenizer, question: str) -> str:
    trigger = options.cot and task.type == "generate" and not (shots and task.rationale)
    description = task.render(task.description, record) if task.description else ""
    if not options.chat:
        parts = [example_question(task, ex) + task.target_delimiter + example_answer(task, ex, options.cot)
                 for ex in shots]
        parts.append(question + (task.target_delimiter + COT_TRIGGER if trigger else ""))
        return description + task.fewshot_separator.join(parts)
    system = "\n\n".join(s for s in (options.system, description.strip()) if s)
    messages = [{"role": "system", "content": system}] if system else []
    for ex in shots:
        messages += [{"role": "user", "content": example_question(task, ex)},
                     {"role": "assistant", "content": example_answer(task, ex, options.cot)}]
    messages.append({"role": "user", "content": question + (" " + COT_TRIGGER if trigger else "")})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def choice_continuation(task: TaskSpec, choice: str, chat: bool) -> str:
    """A choice as scored after the context: in chat the assistant turn begins with it directly."""
    return choice if chat else task.target_delimiter + choice
