"""Perplexity filter (the CCNet idea, arXiv 1911.00359): score each document with a small
language model trained on reference text and keep those inside perplexity bounds. Low
perplexity means "reads like the reference"; very low often means boilerplate or repetition."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.errors import LlmkitError


@torch.inference_mode()
def perplexity(model, ids: list[int]) -> float:
    """exp(mean next-token negative log-likelihood) of one token sequence."""
    tokens = torch.tensor([ids])
    logits = model(tokens[:, :-1])  # (1, T-1, V)
    nll = torch.nn.functional.cross_entropy(logits[0].float(), tokens[0, 1:])
    return math.exp(nll.item())


@dataclass
class PerplexityOptions:
    model: str = ""  # an llmkit/HF checkpoint directory with its tokenizer
    min_perplexity: float = 0.0
    max_perplexity: float = 1000.0
    max_tokens: int = 512


class PerplexityFilter(Step):
    """Keep documents whose perplexity under a reference LM lies within bounds."""

    name = "perplexity"
    Options = PerplexityOptions

    def setup(self) -> None:
        from llmkit.checkpoint import load_checkpoint
        from llmkit.tokenizer import Tokenizer

        if not self.options.model:
            raise LlmkitError("the perplexity step needs `model: DIR` (a checkpoint trained on reference text)")
        torch.set_num_threads(1)  # many workers, one thread each
        self.model = load_checkpoint(self.options.model).eval()
        self.tokenizer = Tokenizer.from_dir(self.options.model)

    def score(self, text: str) -> float:
        if not hasattr(self, "model"):
            self.setup()
        ids = self.tokenizer.encode(text, add_special_tokens=False)[: self.options.max_tokens]
        return perplexity(self.model, ids) if len(ids) >= 2 else float("inf")

    def __call__(self, text: str) -> Result:
        value = self.score(text)
        if value < self.options.min_perplexity:
            return drop("perplexity_too_low")
        if value > self.options.max_perplexity:
            return drop("perplexity_too_high")
        return keep(text)
