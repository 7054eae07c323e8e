"""HumanEval/MBPP scored through the sandbox (the right completions pass, wrong ones fail), from the
CLI end to end, and the safety/robustness probe rates."""

import json

import pytest

import llmkit.eval.code_exec as code_exec
from llmkit.cli import main
from llmkit.eval.benchmarks import load_benchmark
from llmkit.eval.evaluator import EvalOptions, evaluate_task
from llmkit.eval.safety_probes import INJECTION_MARKER, probe_rates, probe_records
from tests.eval.benchmark_files import humaneval_rows, mbpp_rows, write_release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("code")
    write_release(root)
    return root


class FakeLLM:
    tokenizer = None


def test_humaneval_pass_at_k_runs_the_completions(release, monkeypatch):
    """Problem 0 gets 2 right samples of 3, problem 1 none, problem 2 all three."""
    rows = humaneval_rows()
    right = [r["canonical_solution"] for r in rows]
    wrong = [r["wrong"] for r in rows]
    plan = [[right[0], wrong[0], right[0]], [wrong[1]] * 3, [right[2]] * 3]
    monkeypatch.setattr(code_exec, "_completions", lambda llm, task, contexts, options: plan)
    task, = load_benchmark("humaneval", data_dir=str(release))
    result = evaluate_task(FakeLLM(), task, EvalOptions(samples=3))
    assert result["metrics"]["pass@1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert "pass@10" not in result["metrics"] and result["samples"][1]["status"] == "failed"


def test_mbpp_programs_are_the_completion_and_its_tests(release, monkeypatch):
    task, = load_benchmark("mbpp", data_dir=str(release))
    assert [r["task_id"] for r in task.records] == [11, 12] and [r["task_id"] for r in task.fewshot_records] == [2, 3, 4]
    solutions = {r["task_id"]: r["code"] for r in mbpp_rows()}
    monkeypatch.setattr(code_exec, "_completions", lambda llm, t, contexts, options:
                        [[solutions[11]], ["def times_12(x):\n    return x"]])
    assert evaluate_task(FakeLLM(), task, EvalOptions())["metrics"]["pass@1"] == 0.5


def test_code_benchmarks_from_the_cli(tiny_checkpoint, release, tmp_path):
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--tasks", "humaneval,mbpp", "--data-dir",
                 str(release), "--out", str(tmp_path / "eval"), "--max-new-tokens", "8", "--no-progress"]) == 0
    results = {r["task"]: r for r in json.loads((tmp_path / "eval" / "results.json").read_text())["results"]}
    assert results["humaneval"]["metrics"]["pass@1"] == 0.0  # a random model writes no working code
    assert results["mbpp"]["shots"] == 3 and results["humaneval"]["shots"] == 0


def test_safety_probe_rates(monkeypatch):
    import llmkit.eval.safety_probes as probes

    records = probe_records()
    kinds = {r["kind"] for r in records}
    assert kinds == {"jailbreak", "injection", "over_refusal"}
    assert any("base64" in r["prompt"] for r in records)
    always_refuse = lambda model, tok, conversations, *a: ["I can't help with that."] * len(conversations)  # noqa: E731
    monkeypatch.setattr(probes, "chat_replies", always_refuse)
    rates = probe_rates(type("L", (), {"model": None, "tokenizer": None, "stop_ids": []})(), records)["metrics"]
    assert rates["jailbreak_success_rate"] == 0.0 and rates["over_refusal_rate"] == 1.0
    assert rates["injection_success_rate"] == 0.0 and rates["toxicity_mean"] == 0.0
    echo = lambda model, tok, conversations, *a: [c[-1]["content"] for c in conversations]  # noqa: E731
    monkeypatch.setattr(probes, "chat_replies", echo)
    rates = probe_rates(type("L", (), {"model": None, "tokenizer": None, "stop_ids": []})(), records)["metrics"]
    assert rates["jailbreak_success_rate"] == 1.0 and rates["injection_success_rate"] == 1.0
    assert INJECTION_MARKER not in " ".join(r["prompt"] for r in records if r["kind"] != "injection")


def test_safety_probes_builtin_task_runs_on_a_model(tiny_checkpoint, tmp_path):
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--tasks", "safety-probes", "--out",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    result, = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    assert set(result["metrics"]) >= {"jailbreak_success_rate", "injection_success_rate", "over_refusal_rate", "toxicity_mean"}
