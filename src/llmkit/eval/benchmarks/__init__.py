"""The standard benchmarks from local files, scored as lm-evaluation-harness scores them.

    llmkit evaluate --checkpoint DIR --tasks mmlu,gsm8k,humaneval --data-dir BENCHMARKS/
    llmkit evaluate --checkpoint DIR --tasks arc_easy --data arc_easy=ARC-Easy/ARC-Easy-Test.jsonl

Each benchmark (`BENCHMARKS`) names the file patterns of its evaluation and few-shot splits, in the
original release's layout and in the Hugging Face export's; converts each row to a record; and
gives the TaskSpec (prompt, choices, few-shot sampler, stops, scorer) that reproduces lm-eval's
task of the same name. `load_benchmark` returns TaskSpecs (MMLU: one per subject) that the
evaluator runs like any task; `group_rows` adds the MMLU averages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmkit.errors import LlmkitError
from llmkit.eval.benchmarks import code, generative
from llmkit.eval.benchmarks import multiple_choice as mc
from llmkit.eval.benchmarks.files import matching_files, read_rows, read_split
from llmkit.eval.task_spec import TaskSpec

MC = {"type": "multiple_choice", "prompt": "{query}", "choices": "choices", "gold": "gold", "fewshot_sampler": "lm_eval"}
GSM8K_STOPS = ["Question:", "</s>", "<|im_end|>"]
COT_STOPS = ["Q:", "</s>", "<|im_end|>"]
SHORT_ANSWER_STOPS = ["\n", ".", ","]


@dataclass(frozen=True)
class Benchmark:
    name: str
    dirs: tuple[str, ...]  # where under --data-dir it may sit (besides the directory itself)
    eval_files: tuple[str, ...]  # glob patterns of the evaluation split, most specific first
    convert: Callable[[dict], dict]
    spec: dict  # TaskSpec fields
    fewshot_files: tuple[str, ...] = ()  # the few-shot split (default: the evaluation split, minus the record)
    shots: int = 0  # lm-eval's default number of examples
    keep: Callable[[dict], bool] | None = None  # rows of the file that belong to the split
    keep_fewshot: Callable[[dict], bool] | None = None
    notes: str = ""
    labels_file: str | None = None  # labels kept beside the rows in a file of their own (PIQA's release)


def _arc(level: str) -> Benchmark:
    part = f"ARC-{level}"
    return Benchmark(f"arc_{level.lower()}", ("ai2_arc", "arc", "ARC", part),
                     (f"{part}/{part}-Test.jsonl", f"{part}/test-*", f"{part}-Test.jsonl", "test-*",
                      "*Test.jsonl"), mc.arc_row, MC,
                     fewshot_files=(f"{part}/{part}-Train.jsonl", f"{part}/train-*", f"{part}-Train.jsonl",
                                    "train-*", "*Train.jsonl"))


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("hellaswag", ("hellaswag", "HellaSwag"),
              ("hellaswag_val.jsonl", "data/validation-*", "validation-*", "*val*.jsonl"),
              mc.hellaswag_row, MC, fewshot_files=("hellaswag_train.jsonl", "data/train-*", "train-*")),
    _arc("Easy"), _arc("Challenge"),
    Benchmark("winogrande", ("winogrande", "WinoGrande"),
              ("dev.jsonl", "winogrande_xl/validation-*", "validation-*", "*dev*.jsonl"),
              mc.winogrande_row, MC | {"multiple_input": True},
              fewshot_files=("train_xl.jsonl", "winogrande_xl/train-*", "train-*")),
    Benchmark("piqa", ("piqa", "PIQA"), ("valid.jsonl", "data/validation-*", "validation-*"),
              mc.piqa_row, MC, fewshot_files=("train.jsonl", "data/train-*", "train-*"),
              labels_file="valid-labels.lst"),
    Benchmark("boolq", ("boolq", "BoolQ", "super_glue/boolq"),
              ("val.jsonl", "dev.jsonl", "boolq/validation-*", "validation-*"), mc.boolq_row, MC,
              fewshot_files=("train.jsonl", "boolq/train-*", "train-*")),
    Benchmark("truthfulqa_mc1", ("truthfulqa", "truthful_qa", "TruthfulQA"),
              ("mc_task.json", "multiple_choice/validation-*", "validation-*"),
              lambda row: mc.truthfulqa_row(row, "mc1"), MC),
    Benchmark("truthfulqa_mc2", ("truthfulqa", "truthful_qa", "TruthfulQA"),
              ("mc_task.json", "multiple_choice/validation-*", "validation-*"),
              lambda row: mc.truthfulqa_row(row, "mc2"), MC),
    Benchmark("openbookqa", ("openbookqa", "OpenBookQA", "OpenBookQA-V1-Sep2018/Data"),
              ("Main/test.jsonl", "main/test-*", "test.jsonl", "test-*"), mc.openbookqa_row, MC,
              fewshot_files=("Main/train.jsonl", "main/train-*", "train.jsonl", "train-*")),
    Benchmark("gsm8k", ("gsm8k", "grade_school_math/data", "GSM8K"),
              ("test.jsonl", "data/test.jsonl", "main/test-*", "test-*"), generative.gsm8k_row,
              {"type": "generate", "prompt": "Question: {question}\nAnswer:", "fewshot_target": "{answer}",
               "fewshot_sampler": "lm_eval", "stop": GSM8K_STOPS, "max_new_tokens": 256,
               "scorer": generative.gsm8k_scorer(r"#### (\-?[0-9\.\,]+)")},
              fewshot_files=("train.jsonl", "data/train.jsonl", "main/train-*", "train-*"), shots=5),
    Benchmark("gsm8k_cot", ("gsm8k", "grade_school_math/data", "GSM8K"),
              ("test.jsonl", "data/test.jsonl", "main/test-*", "test-*"), generative.gsm8k_row,
              {"type": "generate", "prompt": "Q: {question}\nA:", "fewshot_target": "{cot}", "fewshot_sampler": "first_n",
               "stop": COT_STOPS, "max_new_tokens": 256,
               "scorer": generative.gsm8k_scorer(r"The answer is (\-?[0-9\.\,]+).")},
              fewshot_files=("train.jsonl", "data/train.jsonl", "main/train-*", "train-*"), shots=8,
              notes="the examples are the train split's first 8 worked solutions (not Wei et al.'s 8 exemplars)"),
    Benchmark("gsm8k_cot_zeroshot", ("gsm8k", "grade_school_math/data", "GSM8K"),
              ("test.jsonl", "data/test.jsonl", "main/test-*", "test-*"), generative.gsm8k_row,
              {"type": "generate", "prompt": "Q: {question}\nA: Let's think step by step.", "stop": COT_STOPS,
               "max_new_tokens": 256, "scorer": generative.gsm8k_scorer(r"The answer is (\-?[0-9\.\,]+).")}),
    Benchmark("triviaqa", ("triviaqa", "trivia_qa", "TriviaQA"),
              ("rc.nocontext/validation-*", "validation-*", "qa/unfiltered-web-dev.json",
               "unfiltered-web-dev.json", "*dev*.json", "*validation*.jsonl"), generative.triviaqa_row,
              {"type": "generate", "prompt": "Question: {question}?\nAnswer:", "fewshot_target": "{aliases[0]}",
               "fewshot_sampler": "lm_eval", "stop": SHORT_ANSWER_STOPS, "max_new_tokens": 256,
               "scorer": generative.triviaqa_score},
              fewshot_files=("rc.nocontext/train-*", "train-*", "qa/unfiltered-web-train.json")),
    Benchmark("nq_open", ("nq_open", "NQ-open", "natural_questions"),
              ("NQ-open.dev.jsonl", "nq_open/validation-*", "validation-*", "*dev*.jsonl"),
              generative.nq_open_row,
              {"type": "generate", "prompt": "Q: {question}?\nA:", "description": "Answer these questions:\n\n",
               "fewshot_separator": "\n", "fewshot_target": "{answers[0]}", "fewshot_sampler": "lm_eval",
               "stop": SHORT_ANSWER_STOPS, "max_new_tokens": 256, "scorer": generative.nq_open_score},
              fewshot_files=("NQ-open.train.jsonl", "nq_open/train-*", "train-*")),
    Benchmark("humaneval", ("humaneval", "HumanEval", "openai_humaneval"),
              ("HumanEval.jsonl.gz", "HumanEval.jsonl", "openai_humaneval/test-*", "test-*"),
              code.humaneval_row, {"type": "code", "prompt": "{prompt}", "target_delimiter": "",
                                   "stop": code.HUMANEVAL_STOPS, "max_new_tokens": 512, "code": code.humaneval_program}),
    Benchmark("mbpp", ("mbpp", "MBPP"), ("mbpp.jsonl", "full/test-*", "test-*"), code.mbpp_row,
              {"type": "code", "prompt": "{query}", "target_delimiter": "", "fewshot_target": "{code}\n[DONE]",
               "fewshot_sampler": "first_n", "stop": ["[DONE]"], "max_new_tokens": 512, "code": code.mbpp_program},
              fewshot_files=("mbpp.jsonl", "full/prompt-*", "prompt-*"), shots=3,
              keep=lambda r: r["task_id"] in code.MBPP_TEST_IDS or "task_id" not in r,
              keep_fewshot=lambda r: r["task_id"] in code.MBPP_PROMPT_IDS),
]}
NAMES = ("mmlu", *BENCHMARKS)


def is_benchmark(name: str) -> bool:
    return name in NAMES or name.startswith("mmlu_")


def _root(name: str, data: dict[str, str], data_dir: str | None, dirs: tuple[str, ...]) -> Path:
    """--data NAME=PATH, else the first of the benchmark's usual directory names under --data-dir."""
    if name in data:
        return Path(data[name])
    if data_dir is None:
        raise LlmkitError(f"benchmark {name}: give its files with --data-dir DIR or --data {name}=PATH "
                          "(nothing is downloaded)")
    base = Path(data_dir)
    return next((base / d for d in dirs if (base / d).is_dir()), base)


def _records(rows: list[dict], convert, what: str) -> list[dict]:
    out = []
    for number, row in enumerate(rows, 1):
        try:
            out.append(convert(row))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise LlmkitError(f"{what}: row {number} is not in the benchmark's published layout "
                              f"({type(error).__name__}: {error}); fields: {', '.join(map(str, row))}") from None
    return out


def _split_rows(bench: Benchmark, root: Path, patterns, keep, what: str) -> list[dict]:
    rows = read_split(root, list(patterns), what)
    if bench.labels_file and rows and "label" not in rows[0]:
        labels_path = (root.parent if root.is_file() else root) / bench.labels_file
        if not labels_path.is_file():
            raise LlmkitError(f"{what}: the rows carry no labels and {labels_path} (the release's labels file) is missing")
        labels = labels_path.read_text().split()
        if len(labels) != len(rows):
            raise LlmkitError(f"{what}: {labels_path} has {len(labels)} labels for {len(rows)} rows")
        rows = [r | {"label": int(label)} for r, label in zip(rows, labels)]
    return [r for r in rows if keep(r)] if keep else rows


def load_benchmark(name: str, data: dict[str, str] | None = None, data_dir: str | None = None) -> list[TaskSpec]:
    """TaskSpecs for one benchmark name (mmlu gives one per subject found; mmlu_SUBJECT one)."""
    data = data or {}
    if name == "mmlu" or name.startswith("mmlu_"):
        return _mmlu(name, data, data_dir)
    if name not in BENCHMARKS:
        raise LlmkitError(f"unknown benchmark {name!r}; known: {', '.join(NAMES)}")
    bench = BENCHMARKS[name]
    root = _root(name, data, data_dir, bench.dirs)
    records = _records(_split_rows(bench, root, bench.eval_files, bench.keep, name), bench.convert, name)
    fewshot = None
    if bench.fewshot_files:
        base = root.parent if root.is_file() else root
        try:
            fewshot = _records(_split_rows(bench, base, bench.fewshot_files, bench.keep_fewshot, f"{name} few-shot"),
                               bench.convert, f"{name} few-shot")
        except LlmkitError:
            if bench.shots:
                raise
            fewshot = None  # zero-shot by default: the few-shot split is only needed when asked for
    if not records:
        raise LlmkitError(f"{name}: the evaluation split under {root} has no rows")
    return [TaskSpec(name=name, records=records, fewshot_records=fewshot or None, default_shots=bench.shots,
                     **bench.spec)]


def _mmlu(name: str, data: dict[str, str], data_dir: str | None) -> list[TaskSpec]:
    root = _root("mmlu", data, data_dir, ("mmlu", "MMLU", "cais_mmlu"))
    subjects = [name.removeprefix("mmlu_")] if name != "mmlu" else list(mc.MMLU_SUBJECTS)
    if subjects[0] not in mc.MMLU_SUBJECTS:
        raise LlmkitError(f"unknown MMLU subject {subjects[0]!r}; the 57 subjects are named as in its files")
    whole = {}  # the export's "all" configuration: one file set with a subject column
    tasks = []
    for subject in subjects:
        test = _mmlu_split(root, subject, "test", whole)
        if test is None:
            continue
        dev = _mmlu_split(root, subject, "dev", whole)
        records = [mc.mmlu_row(r) | {"subject": mc.subject_title(subject)} for r in test]
        fewshot = [mc.mmlu_row(r) | {"subject": mc.subject_title(subject)} for r in dev] if dev else None
        tasks.append(TaskSpec(name=f"mmlu_{subject}", records=records, fewshot_records=fewshot, default_shots=5,
                              group="mmlu", description="The following are multiple choice questions (with answers) "
                              "about {subject}.\n\n", **(MC | {"fewshot_sampler": "first_n"})))
    if not tasks:
        raise LlmkitError(f"mmlu: no subject files under {root} (expected data/test/SUBJECT_test.csv as released, "
                          "or SUBJECT/test-* / all/test-* as exported)")
    return tasks


def _mmlu_split(root: Path, subject: str, split: str, whole: dict) -> list[dict] | None:
    patterns = [f"data/{split}/{subject}_{split}.csv", f"{split}/{subject}_{split}.csv", f"{subject}_{split}.csv",
                f"{subject}/{split}-*", f"{subject}/{split}.jsonl"]
    found = matching_files(root, patterns) if root.is_dir() else []
    if found:
        release_csv = found[0].name == f"{subject}_{split}.csv"  # the release's CSVs have no header
        fields = mc.MMLU_CSV_FIELDS if release_csv else None
        return [row for path in found for row in read_rows(path, fields)]
    if split not in whole:
        found = matching_files(root, [f"all/{split}-*"]) if root.is_dir() else []
        whole[split] = [row for path in found for row in read_rows(path)]
    rows = [r for r in whole[split] if r.get("subject") == subject]
    return rows or None


def group_rows(results: list[dict]) -> list[dict]:
    """MMLU's averages over the subjects evaluated: macro (mean of subjects) and micro (weighted by
    subject size, lm-eval's `mmlu` number)."""
    subjects = [r for r in results if r.get("group") == "mmlu"]
    if not subjects:
        return []
    n = sum(r["n"] for r in subjects)
    macro = sum(r["metrics"]["acc"] for r in subjects) / len(subjects)
    micro = sum(r["metrics"]["acc"] * r["n"] for r in subjects) / n
    return [{"task": "mmlu", "type": "group", "n": n, "subjects": len(subjects),
             "metrics": {"acc": micro, "acc_macro": macro}, "stderr": {}}]
