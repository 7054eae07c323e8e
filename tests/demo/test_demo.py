"""`llmkit demo` end to end, shrunk to seconds: every stage runs and its outputs load."""

import json

from llmkit.demo.lifecycle import DemoConfig, run_demo
from llmkit.infer.llm import LLM
from tests.data.planted import ENGLISH, prose


def test_demo_runs_end_to_end_on_user_input(tmp_path):
    docs = ENGLISH + [prose(seed, words=60) for seed in range(40)] + [ENGLISH[0]]  # one exact duplicate
    (tmp_path / "in.txt").write_text("\n\n".join(docs))
    out = tmp_path / "run"
    summary = run_demo(DemoConfig(out=str(out), input=[str(tmp_path / "in.txt")], model="tiny-llama",
                                  vocab_size=320, seq_len=32, batch_size=8, max_steps=40, minutes=2,
                                  lr=3e-3, max_new_tokens=8, sft_steps=4, dpo_steps=3, progress=False))
    for name in ("corpus.jsonl", "data/stats.json", "data/tokenizer/tokenizer.json", "data/index.json",
                 "pretrain/metrics.jsonl", "pretrain/loss_curve.png", "pretrain/final/config.json",
                 "pretrain/final/model.safetensors", "pretrain/final/tokenizer.json", "samples.md", "summary.json",
                 "tasks/copy/train.jsonl", "sft/adapter/adapter_config.json", "sft/final/model.safetensors",
                 "dpo/final/model.safetensors", "dpo/summary.json", "compress/report.md",
                 "compress/tradeoff.png"):
        assert (out / name).is_file(), name
    assert summary["final_loss"] < summary["first_loss"] - 1.0  # it learned something
    assert json.loads((out / "summary.json").read_text())["steps"] == 40
    curation = json.loads((out / "data" / "stats.json").read_text())
    assert curation["docs_in"] == 44 and curation["docs_out"] == 43  # the duplicate is gone
    assert isinstance(LLM.load(out / "pretrain" / "final").generate("The quick", max_new_tokens=4), str)
    assert 0 <= summary["sft"]["exact_match_after"] <= 1 and summary["dpo"]["pairs_held_out"] == 100
    assert [r["method"] for r in summary["compression"]][:2] == ["fp32", "int8"]
    served = summary["served_chat"]  # the server answered the openai client's chat request
    assert isinstance(served["reply"], str) and 1 <= served["completion_tokens"] <= 8
