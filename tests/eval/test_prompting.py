"""Few-shot, chat-template and chain-of-thought prompts, built exactly."""

from llmkit.eval.builtin_tasks import builtin_task
from llmkit.eval.prompting import (
    COT_TRIGGER,
    PromptOptions,
    build_context,
    fewshot_examples,
)
from llmkit.eval.task_spec import TaskSpec

RECORDS = [{"q": f"question {i}", "a": f"answer {i}"} for i in range(6)]


def task(**kw) -> TaskSpec:
    return TaskSpec(name="t", type="generate", records=RECORDS, prompt="Q: {q}\nA:", answer="{a}", **kw)


def test_zero_shot_is_the_rendered_question():
    assert build_context(task(), RECORDS[0], 0, PromptOptions(), None) == "Q: question 0\nA:"


def test_few_shot_examples_are_seeded_exclude_the_question_and_use_the_separators():
    spec = task(fewshot_separator="\n###\n", target_delimiter=" ")
    context = build_context(spec, RECORDS[2], 2, PromptOptions(shots=3, seed=7), None)
    parts = context.split("\n###\n")
    assert len(parts) == 4 and parts[-1] == "Q: question 2\nA:"
    for part in parts[:-1]:
        number = part.split("question ")[1].split("\n")[0]
        assert part == f"Q: question {number}\nA: answer {number}" and number != "2"
    assert context == build_context(spec, RECORDS[2], 2, PromptOptions(shots=3, seed=7), None)  # reproducible
    assert len({str(fewshot_examples(spec, 2, 3, s)) for s in range(5)}) > 1  # other seeds, other examples


def test_fewshot_data_replaces_the_pool():
    pool = [{"q": "shot", "a": "ok"}]
    assert fewshot_examples(task(fewshot_records=pool), 0, 5, 0) == pool


def test_chat_prompts_put_each_example_in_its_own_turns(tiny_tokenizer):
    context = build_context(task(), RECORDS[0], 0, PromptOptions(shots=2, chat=True, system="Be brief."), tiny_tokenizer)
    expected_messages = [{"role": "system", "content": "Be brief."}]
    for ex in fewshot_examples(task(), 0, 2, 1234):
        expected_messages += [{"role": "user", "content": f"Q: {ex['q']}\nA:"}, {"role": "assistant", "content": ex["a"]}]
    expected_messages.append({"role": "user", "content": "Q: question 0\nA:"})
    assert context == tiny_tokenizer.apply_chat_template(expected_messages, add_generation_prompt=True)


def test_chain_of_thought_shows_worked_solutions_or_the_zero_shot_trigger():
    arithmetic = builtin_task("arithmetic", n=5)
    worked = build_context(arithmetic, arithmetic.records[0], 0, PromptOptions(shots=1, cot=True), None)
    assert "The answer is" in worked.split("\n\n")[0] and COT_TRIGGER not in worked
    zero_shot = build_context(arithmetic, arithmetic.records[0], 0, PromptOptions(cot=True), None)
    assert zero_shot.endswith(" " + COT_TRIGGER)


def test_the_arithmetic_rationales_are_correct():
    for record in builtin_task("arithmetic", n=50).records:
        a, b = (int(x) for x in record["prompt"].removeprefix("What is ").removesuffix("?").split(" + "))
        assert record["rationale"].endswith(f"= {a + b}.") and record["answer"] == str(a + b)
