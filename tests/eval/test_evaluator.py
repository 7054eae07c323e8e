"""The evaluator scores each task kind as its definition says, checked against direct computation."""

import json
import math

import pytest
import torch

from llmkit.cli import main
from llmkit.errors import LlmkitError
from llmkit.eval import generation
from llmkit.eval.evaluator import EvalOptions, evaluate_task
from llmkit.eval.prompting import PromptOptions
from llmkit.eval.task_spec import TaskSpec, load_task_file
from llmkit.infer.llm import LLM

MC_RECORDS = [{"q": f"The list {w} is", "choices": ["a mutable sequence", "raised", "the quick brown fox"], "gold": g}
              for w, g in [("one", 0), ("two", 1), ("three", 2), ("four", 0), ("five", 1)]]


@pytest.fixture(scope="module")
def llm(tiny_checkpoint):
    return LLM.load(tiny_checkpoint)


def logprob_of(llm, context: str, continuation: str) -> float:
    """log p(continuation | context) in float64, tokenized the way lm-eval does (jointly, split at the context)."""
    tok = llm.tokenizer
    ctx, whole = tok.encode(context), tok.encode(context + continuation)
    assert whole[: len(ctx)] == ctx
    with torch.no_grad():
        logits = llm.model(torch.tensor([whole[:-1]]))[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return sum(logprobs[t - 1, whole[t]].item() for t in range(len(ctx), len(whole)))


def test_multiple_choice_acc_and_acc_norm_match_direct_loglikelihoods(llm):
    task = TaskSpec(name="mc", type="multiple_choice", records=MC_RECORDS, prompt="{q}")
    result = evaluate_task(llm, task, EvalOptions())
    acc, acc_norm = [], []
    for record in MC_RECORDS:
        lls = [logprob_of(llm, record["q"], " " + c) for c in record["choices"]]
        acc.append(max(range(3), key=lambda i: lls[i]) == record["gold"])
        acc_norm.append(max(range(3), key=lambda i: lls[i] / len(record["choices"][i])) == record["gold"])
    assert result["metrics"]["acc"] == pytest.approx(sum(acc) / 5)
    assert result["metrics"]["acc_norm"] == pytest.approx(sum(acc_norm) / 5)
    first = [logprob_of(llm, MC_RECORDS[0]["q"], " " + c) for c in MC_RECORDS[0]["choices"]]
    assert result["samples"][0]["loglikelihoods"] == pytest.approx(first, abs=1e-4)
    assert result["stderr"]["acc"] == pytest.approx(math.sqrt(sum((a - sum(acc) / 5) ** 2 for a in acc) / 4 / 5))


def test_perplexity_reports_bits_per_byte_from_the_token_loglikelihoods(llm):
    text = "Return the number of items in the container."
    task = TaskSpec(name="ppl", type="perplexity", records=[{"text": text}])
    metrics = evaluate_task(llm, task, EvalOptions())["metrics"]
    tok = llm.tokenizer
    ids = [tok.bos_id if tok.bos_id is not None else tok.eos_id] + tok.encode(text, add_special_tokens=False)
    with torch.no_grad():
        logprobs = torch.log_softmax(llm.model(torch.tensor([ids[:-1]]))[0].double(), -1)
    total = sum(logprobs[t - 1, ids[t]].item() for t in range(1, len(ids)))
    assert metrics["bits_per_byte"] == pytest.approx(-total / math.log(2) / len(text.encode()), rel=1e-5)
    assert metrics["token_perplexity"] == pytest.approx(math.exp(-total / (len(ids) - 1)), rel=1e-5)
    assert metrics["word_perplexity"] == pytest.approx(math.exp(-total / len(text.split())), rel=1e-5)


def test_self_consistency_scores_the_majority_of_sampled_answers(llm, monkeypatch):
    scripted = iter(["41", "40", "41", "7", "8", "8"])
    seen = {}

    def fake_generate(model, prompts, max_new_tokens, params, stop_ids, tokenizer):
        seen.update(n=len(prompts) * params.n, temperature=params.temperature, distinct=len({tuple(p) for p in prompts}))
        return [llm.tokenizer.encode(next(scripted), add_special_tokens=False) for _ in range(len(prompts) * params.n)]

    monkeypatch.setattr(generation, "generate_ids", fake_generate)
    task = TaskSpec(name="sc", type="generate", records=[{"prompt": "a", "answer": "41"}, {"prompt": "b", "answer": "7"}])
    result = evaluate_task(llm, task, EvalOptions(self_consistency=3, temperature=0.9))
    assert seen == {"n": 6, "temperature": 0.9, "distinct": 2}  # each question sampled 3 times
    assert [s["answer"] for s in result["samples"]] == ["41", "8"]
    assert result["metrics"]["exact_match"] == 0.5


def test_robustness_rescoring_adds_typo_metrics(llm):
    task = TaskSpec(name="mc", type="multiple_choice", records=MC_RECORDS, prompt="{q}")
    metrics = evaluate_task(llm, task, EvalOptions(perturb=0.2))["metrics"]
    assert metrics["acc_drop"] == pytest.approx(metrics["acc"] - metrics["acc@typos"])


def test_task_yaml_reads_local_jsonl_and_explains_bad_input(tmp_path):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_RECORDS))
    (tmp_path / "mc.yaml").write_text("type: multiple_choice\ndata: data.jsonl\nprompt: '{q}'\n")
    spec = load_task_file(tmp_path / "mc.yaml")
    assert spec.name == "mc" and spec.records == MC_RECORDS
    (tmp_path / "bad.yaml").write_text("type: generate\ndata: data.jsonl\nprompts: '{q}'\n")
    with pytest.raises(LlmkitError, match="unknown keys prompts"):
        load_task_file(tmp_path / "bad.yaml")
    (tmp_path / "broken.jsonl").write_text('{"q": 1}\n{"q": \n')
    (tmp_path / "broken.yaml").write_text("type: generate\ndata: broken.jsonl\n")
    with pytest.raises(LlmkitError, match=r"broken.jsonl:2: not JSON"):
        load_task_file(tmp_path / "broken.yaml")
    (tmp_path / "typo.yaml").write_text("type: generate\ndata: data.jsonl\nmetrics: [exact-match]\n")
    with pytest.raises(LlmkitError, match="unknown metrics exact-match; choose from exact_match"):
        load_task_file(tmp_path / "typo.yaml")
    with pytest.raises(LlmkitError, match="uses field 'question'"):
        TaskSpec(name="t", type="generate", records=MC_RECORDS, prompt="{question}").render("{question}", MC_RECORDS[0])


def test_evaluate_command_writes_json_and_markdown(tiny_checkpoint, tmp_path):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_RECORDS))
    (tmp_path / "mc.yaml").write_text("name: my-mc\ntype: multiple_choice\ndata: data.jsonl\nprompt: '{q}'\n")
    out = tmp_path / "out"
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--tasks", str(tmp_path / "mc.yaml"), "copy",
                 "bias", "--limit", "4", "--shots", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["task"] for r in results["results"]] == ["my-mc", "copy", "bias"]
    assert results["results"][1]["n"] == 4 and "exact_match" in results["results"][1]["metrics"]
    assert "| my-mc | multiple_choice | 4 | acc |" in (out / "results.md").read_text()
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--tasks", "nonesuch", "--out", str(out)]) == 2


def test_chat_option_uses_the_template_for_generation(llm, monkeypatch):
    prompts = []
    monkeypatch.setattr(generation, "generate_ids", lambda model, p, *a, **k: prompts.extend(p) or [[] for _ in p])
    task = TaskSpec(name="g", type="generate", records=[{"prompt": "hello", "answer": "x"}])
    evaluate_task(llm, task, EvalOptions(prompt=PromptOptions(chat=True)))
    expected = llm.tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    assert prompts == [llm.tokenizer.encode(expected, add_special_tokens=False)]


def test_stopping_at_stop_strings_changes_no_answer(llm, monkeypatch):
    """The Engine ends a completion at the token whose text reaches a stop string; generating to the
    full length and cutting the text afterwards gives the same answers."""
    from dataclasses import replace

    from llmkit.decode import generate_ids

    task = TaskSpec(name="g", type="generate", records=[{"prompt": p, "answer": "x"} for p in
                                                       ["The list", "A list is", "If the file", "Return", "Unicode"]],
                    stop=[" the", "."], max_new_tokens=24)
    early = [s["output"] for s in evaluate_task(llm, task, EvalOptions())["samples"]]
    lengths = []

    def without_stop_strings(model, prompts, max_new_tokens, params, *args):
        out = generate_ids(model, prompts, max_new_tokens, replace(params, stop=[]), *args)
        lengths.extend(map(len, out))
        return out

    monkeypatch.setattr(generation, "generate_ids", without_stop_strings)
    full = [s["output"] for s in evaluate_task(llm, task, EvalOptions())["samples"]]
    assert early == full
    assert max(lengths) > max(map(len, early))  # the full run did generate past the stop strings
