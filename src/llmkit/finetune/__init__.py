"""Fine-tuning and alignment: model transforms (LoRA and the PEFT family) and losses, run by the
one training loop of llmkit.train."""
