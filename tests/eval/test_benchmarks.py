"""The standard benchmarks from local files: every published layout gives the same records, the
prompts are lm-eval's, literal choices lists work, and the MMLU averages are right."""

import json

import pytest

from llmkit.errors import LlmkitError
from llmkit.eval.benchmarks import BENCHMARKS, group_rows, load_benchmark
from llmkit.eval.evaluator import EvalOptions, evaluate_task
from llmkit.eval.prompting import PromptOptions, build_context
from llmkit.eval.task_spec import load_task_file
from tests.eval.benchmark_files import SUBJECTS, write_export, write_release

PRESENT = [name for name in BENCHMARKS if name != "arc_challenge"]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    write_release(root / "release")
    write_export(root / "parquet", "parquet")
    write_export(root / "jsonl", "jsonl")
    return root


def _loaded(name, data_dir):
    return [(t.name, t.records, t.fewshot_records) for t in load_benchmark(name, data_dir=str(data_dir))]


@pytest.mark.parametrize("name", ["mmlu", *PRESENT])
def test_release_and_export_layouts_give_the_same_records(layouts, name):
    release = _loaded(name, layouts / "release")
    assert release and all(records for _, records, _ in release)
    assert _loaded(name, layouts / "parquet") == release
    assert _loaded(name, layouts / "jsonl") == release


def test_mmlu_five_shot_prompt_is_lm_evals(layouts):
    tasks = load_benchmark("mmlu", data_dir=str(layouts / "release"))
    assert [t.name for t in tasks] == [f"mmlu_{s}" for s in SUBJECTS]  # subjects with files, in MMLU's order
    task = tasks[0]
    context = build_context(task, task.records[0], 0, PromptOptions(shots=task.default_shots), None)
    dev = task.fewshot_records
    expected = "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    expected += "".join(f"{d['query']} {d['choices'][d['gold']]}\n\n" for d in dev[:5]) + task.records[0]["query"]
    assert context == expected
    assert task.records[0]["query"].endswith("\nA. the list\nB. the file\nC. the error\nD. the items\nAnswer:")


def test_hellaswag_preprocessing_and_winogrande_partial_contexts(layouts):
    hella = load_benchmark("hellaswag", data_dir=str(layouts / "release"))[0].records[0]
    assert hella["query"] == "Making a list: A person picks up the list. They. turn the file"
    assert hella["choices"][0] == "and the list falls down."  # [step] dropped, double space folded
    wino = load_benchmark("winogrande", data_dir=str(layouts / "release"))[0].records[0]
    assert wino["choices"] == ["The list did not fit in the file because list", "The list did not fit in the file because file"]
    assert wino["continuation"] == "was too error."


def test_missing_files_and_bad_rows_fail_with_the_fix(tmp_path):
    with pytest.raises(LlmkitError, match="--data-dir DIR or --data gsm8k=PATH"):
        load_benchmark("gsm8k")
    with pytest.raises(LlmkitError, match="no file under"):
        load_benchmark("gsm8k", data_dir=str(tmp_path))
    (tmp_path / "test.jsonl").write_text(json.dumps({"prompt": "no question field"}) + "\n")
    with pytest.raises(LlmkitError, match="row 1 is not in the benchmark's published layout"):
        load_benchmark("gsm8k", data={"gsm8k": str(tmp_path / "test.jsonl")})
    with pytest.raises(LlmkitError, match="unknown MMLU subject"):
        load_benchmark("mmlu_cooking", data_dir=str(tmp_path))


def test_literal_choices_list_in_a_task_yaml(tiny_checkpoint, tmp_path):
    """MMLU-style letters as a verbalizer list (crashed with a TypeError before), gold as a letter."""
    rows = [{"question": f"Pick {i}", "answer": "ABCD"[i % 4]} for i in range(6)]
    (tmp_path / "letters.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "letters.yaml").write_text("type: multiple_choice\ndata: letters.jsonl\nprompt: \"{question}\\nAnswer:\"\n"
                                           "choices: [A, B, C, D]\ngold: answer\n")
    (tmp_path / "templated.yaml").write_text("type: multiple_choice\ndata: letters.jsonl\nprompt: \"{question}\"\n"
                                             "choices: [\"yes {answer}\", \"no {answer}\"]\ngold: 0\n")
    from llmkit.infer.llm import LLM

    llm = LLM.load(tiny_checkpoint)
    letters = load_task_file(tmp_path / "letters.yaml")
    assert letters.choice_texts(rows[0]) == ["A", "B", "C", "D"] and letters.gold_index(rows[1]) == 1
    result = evaluate_task(llm, letters, EvalOptions())
    assert result["n"] == 6 and 0.0 <= result["metrics"]["acc"] <= 1.0
    templated = load_task_file(tmp_path / "templated.yaml")
    assert templated.choice_texts(rows[2]) == ["yes C", "no C"]


def test_mmlu_group_averages():
    results = [{"task": "mmlu_a", "group": "mmlu", "n": 10, "metrics": {"acc": 0.5}},
               {"task": "mmlu_b", "group": "mmlu", "n": 30, "metrics": {"acc": 0.1}}, {"task": "other", "n": 5, "metrics": {}}]
    group, = group_rows(results)
    assert group["metrics"]["acc"] == pytest.approx((5 + 3) / 40)  # weighted by size, lm-eval's mmlu number
    assert group["metrics"]["acc_macro"] == pytest.approx(0.3) and group["subjects"] == 2


def test_gsm8k_extraction_and_matching_as_lm_eval():
    from llmkit.eval.benchmarks.generative import gsm8k_row, gsm8k_scorer

    record = gsm8k_row({"question": "q", "answer": "2 + 3 = <<2+3=5>>5 apples.\n#### 1,005"})
    assert record["cot"] == "2 + 3 = 5 apples. The answer is 1,005."
    score = gsm8k_scorer(r"#### (\-?[0-9\.\,]+)")
    assert score("so #### 1,005.\n", record) == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert score("it is $1005", record) == {"exact_match_strict": 0.0, "exact_match_flexible": 1.0}
    assert score("no number here", record) == {"exact_match_strict": 0.0, "exact_match_flexible": 0.0}


def test_short_answer_scores_exact_match_and_f1():
    from llmkit.eval.benchmarks.generative import nq_open_score, triviaqa_score

    record = {"aliases": ["Paris", "City of Light"], "answers": ["the Eiffel Tower"]}
    assert triviaqa_score(" paris", record) == {"exact_match": 1.0, "f1": 1.0}
    partial = triviaqa_score(" light city", record)
    assert partial["exact_match"] == 0.0 and partial["f1"] == pytest.approx(0.8)  # 2 of 2 predicted, 2 of 3 true
    assert nq_open_score(" Eiffel Tower", record)["exact_match"] == 1.0  # the article is ignored
