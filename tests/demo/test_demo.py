"""`llmkit demo` end to end, shrunk to seconds: every stage runs and its outputs load."""

import json

import pytest

from llmkit.infer.llm import LLM

pytestmark = pytest.mark.xdist_group("demo")  # one shrunk demo run serves every test here


def test_demo_runs_every_stage_and_writes_its_outputs(demo_run):
    out, summary = demo_run
    for name in ("corpus.jsonl", "canaries.jsonl", "data/stats.json", "data/tokenizer/tokenizer.json",
                 "data/index.json", "pretrain/metrics.jsonl", "pretrain/loss_curve.png", "pretrain/final/config.json",
                 "pretrain/final/model.safetensors", "pretrain/final/tokenizer.json", "samples.md", "summary.json",
                 "tasks/copy/train.jsonl", "sft/adapter/adapter_config.json", "sft/final/model.safetensors",
                 "dpo/final/model.safetensors", "dpo/summary.json", "compress/report.md", "compress/tradeoff.png",
                 "compress/dpo-int8/compression.json", "eval/tasks/heldout-ppl.yaml", "eval/DPO int8/results.json",
                 "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert summary["final_loss"] < summary["first_loss"] - 1.0  # it learned something
    from llmkit.host.ceilings import bf16_is_fast

    assert summary["precision"] == ("bf16" if bf16_is_fast() else "fp32")  # auto: bf16 on bf16 matrix units
    assert json.loads((out / "summary.json").read_text())["steps"] == 40
    curation = json.loads((out / "data" / "stats.json").read_text())
    assert summary["documents_held_out"] == 2  # kept out of training for evaluation
    texts = [json.loads(line)["text"] for line in (out / "corpus.jsonl").read_text().splitlines()]
    duplicates = len(texts) - len(set(texts))  # planted canaries may have made the two copies differ
    assert curation["docs_in"] == 42 and curation["docs_out"] == 42 - duplicates
    assert isinstance(LLM.load(out / "pretrain" / "final").generate("The quick", max_new_tokens=4), str)
    assert 0 <= summary["sft"]["exact_match_after"] <= 1 and summary["dpo"]["pairs_held_out"] == 100
    assert [r["method"] for r in summary["compression"]][:2] == ["fp32", "int8"]
    served = summary["served_chat"]  # the server answered the openai client's chat request
    assert isinstance(served["reply"], str) and 1 <= served["completion_tokens"] <= 8


def test_canaries_are_planted_in_the_training_corpus_only(demo_run):
    out, _ = demo_run
    corpus = (out / "corpus.jsonl").read_text()
    held_out = (out / "eval" / "tasks" / "heldout.jsonl").read_text()
    for canary in map(json.loads, (out / "canaries.jsonl").read_text().splitlines()):
        assert corpus.count(canary["secret"]) == 20 and canary["secret"] not in held_out


def test_every_stage_is_measured_and_every_model_evaluated_the_same_way(demo_run):
    out, summary = demo_run
    stages = {row["stage"]: row for row in summary["stages"]}
    assert list(stages) == ["curate + tokenizer", "pre-train", "SFT (LoRA)", "DPO", "compress", "evaluate", "serve"]
    assert all(row["seconds"] > 0 and row["peak_rss_mib"] > 0 for row in stages.values())
    assert stages["SFT (LoRA)"]["trainable"] < stages["pre-train"]["trainable"] == summary["parameters"]
    assert set(summary["evaluation"]) == {"pre-trained", "SFT", "DPO", "DPO int8"}
    for scores in summary["evaluation"].values():
        assert {"heldout-ppl", "arithmetic-mc", "bias", "canary", "copy", "recall", "refusal"} <= set(scores)
        assert scores["heldout-ppl"]["bits_per_byte"] > 0
    report = (out / "report.md").read_text()
    assert "| pre-train |" in report and "llmkit evaluate --checkpoint" in report and "](pretrain/loss_curve.png)" in report
