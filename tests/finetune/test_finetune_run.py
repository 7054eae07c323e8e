"""`llmkit finetune` end to end on a tiny model: loss falls, the merged checkpoint equals base +
adapter, and the adapter is in PEFT's layout."""

import json

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.finetune.peft.lora import load_lora_adapter as load_adapter


def write_task(path, n=24):
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    with path.open("w") as f:
        for i in range(n):
            word = words[i % len(words)]
            f.write(json.dumps({"instruction": f"Repeat the word: {word}", "output": f"{word} {word}"}) + "\n")
    return path


@pytest.mark.parametrize("method", ["lora", "full", "dora", "ia3"])
def test_finetune_lowers_the_loss_and_exports(tiny_checkpoint, tmp_path, method):
    data = write_task(tmp_path / "task.jsonl")
    out = tmp_path / method
    args = ["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out), "--method", method,
            "--max-steps", "40", "--batch.batch_size", "4", "--batch.seq_len", "64",
            "--optim.lr", "5e-2" if method == "ia3" else "1e-2", "--schedule.warmup-steps", "2", "--no-progress",
            "--lora.r", "8", "--lora.target-modules", "q_proj", "v_proj", "up_proj"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    # (IA)^3 trains a few thousand scales, so it moves least in 40 steps
    assert summary["final_loss"] < summary["first_loss"] * {"full": 0.5, "lora": 0.75, "dora": 0.75, "ia3": 0.95}[method]
    final = load_checkpoint(out / "final").eval()
    tokens = torch.tensor([[3, 4, 5, 6, 7]])
    if method == "ia3":
        assert json.loads((out / "adapter" / "adapter_config.json").read_text())["peft_type"] == "IA3"
    if method in ("lora", "dora"):
        assert (out / "adapter" / "adapter_config.json").is_file()
        assert summary["trainable_parameters"] < summary["parameters"] / 5
        rebuilt = load_checkpoint(tiny_checkpoint).eval()
        load_adapter(rebuilt, out / "adapter")
        with torch.no_grad():
            assert torch.allclose(final(tokens), rebuilt(tokens), atol=1e-4)
    elif method == "full":
        assert summary["trainable_parameters"] == summary["parameters"]


def test_merge_command_equals_the_run_s_merged_checkpoint(tiny_checkpoint, tmp_path):
    data = write_task(tmp_path / "task.jsonl")
    out = tmp_path / "run"
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                 "--max-steps", "5", "--batch.batch_size", "4", "--batch.seq_len", "64", "--optim.lr", "1e-2",
                 "--no-progress"]) == 0
    assert main(["merge", "--checkpoint", str(tiny_checkpoint), "--adapter", str(out / "adapter"),
                 "--out", str(tmp_path / "merged")]) == 0
    tokens = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        a = load_checkpoint(tmp_path / "merged").eval()(tokens)
        b = load_checkpoint(out / "final").eval()(tokens)
    assert torch.allclose(a, b, atol=1e-5)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()


@pytest.mark.parametrize("method,extra", [("prompt", []), ("ptuning", []), ("full", ["--with-soft-prompt"])])
def test_prompt_learning_variants(tiny_checkpoint, tmp_path, method, extra):
    """Fixed-LM prompt tuning, P-tuning, and prompt + LM tuning: chosen by what is frozen."""
    data = write_task(tmp_path / "task.jsonl")
    out = tmp_path / method
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                 "--method", method, *extra, "--prompt-tokens", "16", "--max-steps", "30", "--batch.batch_size", "4",
                 "--batch.seq_len", "64", "--optim.lr", "3e-1" if method != "full" else "3e-3",
                 "--schedule.warmup-steps", "2", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # a soft prompt moves a tiny random model little (prompt tuning pays off at scale): it must still learn
    assert summary["final_loss"] < summary["first_loss"] * (0.9 if method == "full" else 0.99)
    assert (out / "soft_prompt" / "adapter_config.json").is_file()
    assert (out / "final").is_dir() == (method == "full")


@pytest.mark.parametrize("method,lr,files", [("adapter", "3e-2", "adapter/adapter_model.safetensors"),
                                              ("prefix", "5e-2", "prefix/adapter_model.safetensors")])
def test_unfoldable_adapters_from_the_cli(tiny_checkpoint, tmp_path, method, lr, files):
    """Houlsby adapters and prefix tuning train from `llmkit finetune` and save beside (not into) the model."""
    data = write_task(tmp_path / "task.jsonl")
    out = tmp_path / method
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                 "--method", method, "--prompt-tokens", "8", "--max-steps", "30", "--batch.batch_size", "4",
                 "--batch.seq_len", "64", "--optim.lr", lr, "--schedule.warmup-steps", "2", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_loss"] < summary["first_loss"] * 0.95, summary
    assert (out / files).is_file() and not (out / "final").exists()
    assert summary["trainable_parameters"] < summary["parameters"] * 0.2
