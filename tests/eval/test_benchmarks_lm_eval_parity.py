"""The benchmarks score as lm-evaluation-harness does: lm-eval's own task definitions (its YAMLs,
pointed at the same local files) run on the same checkpoint through `llmkit lm-eval`, against
`llmkit evaluate` on those files with each benchmark's default shots. Same prompts, same numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

from llmkit.cli import main  # noqa: E402
from tests.eval.benchmark_files import SUBJECTS, write_export  # noqa: E402

TASKS = Path(lm_eval.__file__).parent / "tasks"
# ours -> (lm-eval's YAML, its splits -> our export files, split keys set to null, extra YAML, metric pairs)
ACC = [("acc", "acc,none")]
ACC_NORM = ACC + [("acc_norm", "acc_norm,none")]
SHORT = [("exact_match", "exact_match,remove_whitespace")]
GSM8K = [("exact_match_strict", "exact_match,strict-match"), ("exact_match_flexible", "exact_match,flexible-extract")]
CASES = {
    **{f"mmlu_{s}": (f"mmlu/default/mmlu_{s}.yaml", {"test": f"mmlu/{s}/test", "dev": f"mmlu/{s}/dev"}, [], "num_fewshot: 5\n", ACC)
       for s in SUBJECTS},
    "arc_easy": ("arc/arc_easy.yaml", {"test": "ai2_arc/ARC-Easy/test", "train": "ai2_arc/ARC-Easy/train"},
                 ["validation_split"], "", ACC_NORM),
    "hellaswag": ("hellaswag/hellaswag.yaml", {"validation": "hellaswag/data/validation"}, ["training_split"], "", ACC_NORM),
    "winogrande": ("winogrande/default.yaml", {"validation": "winogrande/winogrande_xl/validation"}, ["training_split"], "", ACC),
    "piqa": ("piqa/piqa.yaml", {"validation": "piqa/data/validation"}, ["training_split"], "", ACC_NORM),
    "boolq": ("super_glue/boolq/default.yaml", {"validation": "boolq/boolq/validation"}, ["training_split"], "", ACC),
    "truthfulqa_mc1": ("truthfulqa/truthfulqa_mc1.yaml", {"validation": "truthfulqa/multiple_choice/validation"}, [], "", ACC),
    "truthfulqa_mc2": ("truthfulqa/truthfulqa_mc2.yaml", {"validation": "truthfulqa/multiple_choice/validation"}, [], "",
                       [("mc2", "acc,none")]),
    "openbookqa": ("openbookqa/openbookqa.yaml", {"test": "openbookqa/main/test"}, ["training_split", "validation_split"], "",
                   ACC_NORM),
    "gsm8k": ("gsm8k/gsm8k.yaml", {"test": "gsm8k/main/test", "train": "gsm8k/main/train"}, [], "", GSM8K),
    "triviaqa": ("triviaqa/default.yaml", {"validation": "triviaqa/rc.nocontext/validation"}, ["training_split"], "", SHORT),
    "nq_open": ("nq_open/nq_open.yaml", {"validation": "nq_open/nq_open/validation"}, ["training_split"], "", SHORT),
}


def lm_eval_yaml(name, include, files, nulls, extra, root):
    data_files = "".join(f"    {split}: {root / (path + '-00000-of-00001.jsonl')}\n" for split, path in files.items())
    return (f"include: {TASKS / include}\ntask: local_{name}\ntag: []\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n{data_files}" + "".join(f"{key}: null\n" for key in nulls) + extra)


@pytest.mark.slow  # about 25 s: lm-eval start-up, 14 tasks, then ours (make test-all and CI run it)
def test_scores_and_prompts_equal_lm_evals(tiny_checkpoint, tmp_path):
    data = tmp_path / "data"
    write_export(data, "jsonl")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, (include, files, nulls, extra, _) in CASES.items():
        (tasks / f"local_{name}.yaml").write_text(lm_eval_yaml(name, include, files, nulls, extra, data))
    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"),
                        "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "llmkit", "lm-eval", "run", "--model", "llmkit", "--model_args",
                           f"checkpoint={tiny_checkpoint}", "--tasks", ",".join(f"local_{n}" for n in CASES),
                           "--include_path", str(tasks), "--output_path", str(tmp_path / "lm"), "--log_samples"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result_file, = (tmp_path / "lm").rglob("results_*.json")
    harness = json.loads(result_file.read_text())["results"]

    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--tasks", "mmlu," + ",".join(
        n for n in CASES if not n.startswith("mmlu_")), "--data-dir", str(data), "--out", str(tmp_path / "ours"),
        "--no-progress"]) == 0
    ours = {r["task"]: r for r in json.loads((tmp_path / "ours" / "results.json").read_text())["results"]}
    compared = 0
    for name, (*_, pairs) in CASES.items():
        for our_metric, their_metric in pairs:
            assert ours[name]["metrics"][our_metric] == pytest.approx(harness[f"local_{name}"][their_metric], abs=1e-3), \
                (name, our_metric, ours[name]["metrics"], harness[f"local_{name}"])
            compared += 1
    assert compared == 18

    # the prompts themselves: lm-eval's logged contexts equal ours (few-shot draws included)
    from llmkit.eval.benchmarks import load_benchmark
    from llmkit.eval.prompting import PromptOptions, build_context

    for name in ("gsm8k", f"mmlu_{SUBJECTS[0]}"):
        logged, = (tmp_path / "lm").rglob(f"samples_local_{name}_*.jsonl")
        first = json.loads(logged.read_text().splitlines()[0])
        task = next(t for t in load_benchmark(name.split("_")[0] if name.startswith("mmlu") else name,
                                              data_dir=str(data)) if t.name == name)
        doc = first["doc_id"]
        context = build_context(task, task.records[doc], doc, PromptOptions(shots=task.default_shots), None)
        assert first["arguments"]["gen_args_0"]["arg_0"] == context

    # and the generations (random weights score 0 on both sides, so compare the texts themselves;
    # GSM8K's 5-shot prompts overflow this tiny model's context, which each side trims its own way)
    for name in ("triviaqa", "nq_open"):
        logged, = (tmp_path / "lm").rglob(f"samples_local_{name}_*.jsonl")
        theirs = sorted((json.loads(line) for line in logged.read_text().splitlines()), key=lambda s: s["doc_id"])
        assert [s["resps"][0][0] for s in theirs][:5] == [s["output"] for s in ours[name]["samples"]]


OUTPUTS = ["The answer is 42.", "so #### 1,234.\n", "#### -7", "he paid $1,005 in total", "no number", " 3.5 apples",
           "The answer is $12.", "12, then 13, then 14", "####  8"]


def test_extraction_and_matching_equal_lm_evals_functions():
    """Our regex filters and exact match against lm-eval's own, on the patterns its tasks use."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    from llmkit.eval.benchmarks.generative import GSM8K_FLEXIBLE, GSM8K_IGNORE, NQ_IGNORE
    from llmkit.eval.benchmarks.scoring import exact_match, regex_filter

    for pattern, group in [(r"#### (\-?[0-9\.\,]+)", 0), (r"The answer is (\-?[0-9\.\,]+).", 0), (GSM8K_FLEXIBLE, -1)]:
        theirs = RegexFilter(regex_pattern=pattern, group_select=group).apply([[o] for o in OUTPUTS], [{}] * len(OUTPUTS))
        assert [regex_filter(o, pattern, group) for o in OUTPUTS] == [t[0] for t in theirs]
    refs = ["He has 5.\n#### 1,234", "#### 42", "The Beatles", "a Fox!"]
    preds = ["1234", "42.", "beatles", "fox", "1,234", "The Beatles", " fox"]
    for options in [dict(ignore=GSM8K_IGNORE, ignore_case=True), dict(ignore=NQ_IGNORE, ignore_case=True, ignore_punctuation=True),
                    dict(ignore_case=True, ignore_punctuation=True)]:
        for pred in preds:
            for ref in refs:
                theirs = exact_match_hf_evaluate([pred], [ref], regexes_to_ignore=list(options.get("ignore", ())) or None,
                                                 ignore_case=options.get("ignore_case", False),
                                                 ignore_punctuation=options.get("ignore_punctuation", False))["exact_match"]
                assert exact_match(pred, [ref], **options) == theirs, (pred, ref, options)
