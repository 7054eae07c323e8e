"""P-tuning (Liu et al., arXiv 2103.10385): a soft prompt produced by a small trained MLP over seed
embeddings (llmkit.finetune.peft.prompt.PromptEncoderEmbedding). Only the encoder's output is needed
to decode, so it is saved as a PROMPT_TUNING adapter and loads as one."""

from __future__ import annotations

from typing import Any

from torch import nn

from llmkit.finetune.peft import register
from llmkit.finetune.peft.prompt import PromptMethod, apply_p_tuning


@register
class PTuningMethod(PromptMethod):
    name = "ptuning"

    def matches(self, config: dict[str, Any]) -> bool:
        return False  # saved as PROMPT_TUNING

    def apply(self, model: nn.Module, cfg) -> None:
        apply_p_tuning(model, cfg.prompt_tokens)
