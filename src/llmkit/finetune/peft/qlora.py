"""QLoRA (Dettmers et al., arXiv 2305.14314): the frozen base quantized to NF4 (llmkit.quant.nf4),
LoRA on top in full precision. The adapter is plain LoRA in PEFT's layout; what users serve is the
adapter merged into the full-precision base (4-bit weights cannot absorb it), so `llmkit finetune`
does that for final/, and a saved QLoRA adapter loads as LoRA.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from llmkit.finetune.peft import register
from llmkit.finetune.peft.lora import LoraMethod
from llmkit.quant.nf4 import quantize_model_nf4


@register
class QLoraMethod(LoraMethod):
    name = "qlora"
    merges_into_full_precision_base = True

    def matches(self, config: dict[str, Any]) -> bool:
        return False  # its adapters are LoRA adapters (loaded by the lora method)

    def apply(self, model: nn.Module, cfg) -> None:
        quantize_model_nf4(model)  # every Linear but the head; LoRA then wraps the targets
        super().apply(model, cfg)
