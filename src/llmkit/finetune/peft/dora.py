"""DoRA (Liu et al., arXiv 2402.09353): LoRA whose update is split into a learned per-row magnitude
and a direction; the layers are LoRALinear with a magnitude vector (llmkit.finetune.peft.lora).
Saved in PEFT's LORA layout with `use_dora` and `lora_magnitude_vector` tensors."""

from __future__ import annotations

from llmkit.finetune.peft import register
from llmkit.finetune.peft.lora import LoraMethod


@register
class DoraMethod(LoraMethod):
    name, use_dora = "dora", True
