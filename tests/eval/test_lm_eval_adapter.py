"""llmkit as lm-evaluation-harness's `--model llmkit`: the same log-likelihoods as lm-eval's own
Hugging Face model on the same checkpoint, and a local custom task run through `llmkit lm-eval`."""

import json
import os
import subprocess
import sys

import pytest

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402

from llmkit.eval.builtin_tasks import builtin_task  # noqa: E402
from llmkit.eval.evaluator import EvalOptions, evaluate_task  # noqa: E402
from llmkit.eval.lm_eval_adapter import LlmkitLM  # noqa: E402
from llmkit.infer.llm import LLM  # noqa: E402

PAIRS = [("The quick brown fox", " jumps over the lazy dog"), ("A list is a", " mutable sequence"),
         ("", "Return the number of items"), ("If the file does not exist,", " an error is raised.")]
TEXTS = ["Unicode text like naïve café must survive a round trip. " * 3, "Return the number of items."]


def instances(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def test_loglikelihoods_match_lm_evals_huggingface_model(tiny_checkpoint):
    from lm_eval.models.huggingface import HFLM

    ours = LlmkitLM(checkpoint=str(tiny_checkpoint), batch_size=2)
    reference = HFLM(pretrained=str(tiny_checkpoint), device="cpu", batch_size=2, dtype="float32")
    got = ours.loglikelihood(instances("loglikelihood", PAIRS))
    expected = reference.loglikelihood(instances("loglikelihood", PAIRS))
    for (a, greedy_a), (b, greedy_b) in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    rolling = ours.loglikelihood_rolling(instances("loglikelihood_rolling", [(t,) for t in TEXTS]))
    expected_rolling = reference.loglikelihood_rolling(instances("loglikelihood_rolling", [(t,) for t in TEXTS]))
    assert rolling == pytest.approx(expected_rolling, abs=1e-3)


def test_generate_until_stops_at_the_requested_strings(tiny_checkpoint):
    ours = LlmkitLM(checkpoint=str(tiny_checkpoint))
    free, = ours.generate_until(instances("generate_until", [("The list", {"until": [], "max_gen_toks": 12})]))
    assert free  # a random model still writes something
    cut_at = free.strip()[0]
    stopped, = ours.generate_until(instances("generate_until", [("The list", {"until": [cut_at], "max_gen_toks": 12})]))
    assert cut_at not in stopped and free.startswith(stopped)


def test_batched_generation_equals_one_request_at_a_time(tiny_checkpoint):
    ours = LlmkitLM(checkpoint=str(tiny_checkpoint), batch_size=3)
    args = [(context, {"until": ["\n"], "max_gen_toks": 8}) for context in
            ["The", "A list is a mutable", "If the file does not exist, an error", "Return", "Unicode text"]]
    args.append(("The quick", {"until": [], "max_gen_toks": 5}))  # other settings: another group
    batched = ours.generate_until(instances("generate_until", args))
    alone = [ours.generate_until(instances("generate_until", [a]))[0] for a in args]
    assert batched == alone


@pytest.mark.xdist_group("lm_eval_cli")
def test_llmkit_lm_eval_runs_a_local_custom_task(tiny_checkpoint, tmp_path):
    task = builtin_task("arithmetic-mc", n=12)
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task.records))
    (tmp_path / "local_mc.yaml").write_text(f"""task: local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {tmp_path / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"),
                        "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "llmkit", "lm-eval", "run", "--model", "llmkit", "--model_args",
                           f"checkpoint={tiny_checkpoint}", "--tasks", "local_mc", "--include_path", str(tmp_path),
                           "--output_path", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result_file, = (tmp_path / "out").rglob("results_*.json")
    harness = json.loads(result_file.read_text())["results"]["local_mc"]
    ours = evaluate_task(LLM.load(tiny_checkpoint), task, EvalOptions())["metrics"]
    assert harness["acc,none"] == pytest.approx(ours["acc"]) and harness["acc_norm,none"] == pytest.approx(ours["acc_norm"])
