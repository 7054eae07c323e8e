"""The FLOP count behind MFU: 6 per weight per token when trained, 4 when frozen (no weight gradient)."""

import json

from llmkit.finetune.peft.lora import LoraConfig, apply_lora
from llmkit.model import build_model, named_config
from llmkit.train.flops import flops_per_token


def test_frozen_weights_cost_four_flops_per_token_and_trained_ones_six():
    cfg = named_config("tiny-llama")
    model = build_model(cfg, "cpu")
    attention = 12 * cfg.n_layer * 64 * cfg.n_head * cfg.head_dim
    head = cfg.vocab_size * cfg.d_model  # tied: the embedding matrix multiplies again as the head
    dense = sum(p.numel() for p in model.parameters()) - cfg.vocab_size * cfg.d_model + (head if cfg.tie_embeddings else 0)
    assert flops_per_token(model, 64) == 6 * dense + attention
    model.requires_grad_(False)
    assert flops_per_token(model, 64) == 4 * dense + attention


def test_lora_counts_its_adapters_as_trained_and_the_base_as_frozen():
    cfg = named_config("tiny-llama")
    model = build_model(cfg, "cpu")
    full = flops_per_token(model, 64)
    apply_lora(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert flops_per_token(model, 64) == full - 2 * (sum(p.numel() for p in model.parameters()) - adapters
                                                     - cfg.vocab_size * cfg.d_model) + 6 * adapters


def test_fine_tuning_mfu_counts_the_padded_batch_actually_run(tiny_checkpoint, tmp_path):
    """SFT batches are padded to their longest example, far short of seq_len: counting batch x
    seq_len positions once reported MFU above 100% for LoRA SFT on the demo."""
    from llmkit.cli import main

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Repeat: a b"},
                                                      {"role": "assistant", "content": "a b"}]}) + "\n" for _ in range(64)))
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "o"),
                 "--method", "lora", "--max-steps", "6", "--batch.seq-len", "512", "--batch.batch-size", "8",
                 "--no-progress"]) == 0
    last = json.loads((tmp_path / "o" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < last["mfu"] < 1


def test_a_preference_step_counts_chosen_and_rejected_padded_to_one_width():
    import torch

    from llmkit.finetune.preference_task import PreferenceTask

    batch = {"chosen": torch.zeros(4, 9, dtype=torch.long), "rejected": torch.zeros(4, 13, dtype=torch.long)}
    assert PreferenceTask.positions(None, batch) == 2 * 4 * 13
