"""Per-request sampling settings (the OpenAI/vLLM set), validated with messages that name the field.

Every number must be finite and inside its documented range; a temperature between 0 and
MIN_TEMPERATURE is raised to it (as vLLM does), since dividing logits by a sub-normal number is
numerically meaningless. The ranges are listed in docs/serving.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmkit.decode.grammar import Grammar
from llmkit.errors import LlmkitError

MIN_TEMPERATURE = 1e-2
MAX_TEMPERATURE = 100.0
PENALTY_RANGE = (1e-2, 100.0)  # repetition_penalty: beyond this it only produces overflow or no-ops
MAX_SEED = 2**63 - 1


@dataclass
class SamplingParams:
    temperature: float = 0.0  # 0: greedy
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None  # drop tokens below min_p x the top token's probability
    repetition_penalty: float = 1.0  # CTRL (arXiv 1909.05858): divide seen tokens' positive logits
    presence_penalty: float = 0.0  # OpenAI: subtract once from every token already generated
    frequency_penalty: float = 0.0  # OpenAI: subtract per occurrence in the output so far
    max_tokens: int = 16  # 0: compute the prompt only (its prompt_logprobs), generate nothing
    stop: list[str] = field(default_factory=list)  # stop strings (not included in the text)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    seed: int | None = None  # per-request generator: the same seed gives the same tokens
    n: int = 1  # completions per prompt (they share the prompt's KV blocks)
    logprobs: int | None = None  # also return the chosen token's and the top-k log-probabilities
    prompt_logprobs: int | None = None  # also score the prompt's own tokens (with top-k alternatives)
    logit_bias: dict[int, float] | None = None  # OpenAI: added to these tokens' logits before sampling
    grammar: Grammar | None = None  # structured output: every reply matches it (llmkit.decode.grammar)

    def __post_init__(self):
        for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                raise LlmkitError(f"{name} must be a finite number, got {value!r}")
        low, high = PENALTY_RANGE
        checks = [
            ("temperature", 0 <= self.temperature <= MAX_TEMPERATURE, f"must be in [0, {MAX_TEMPERATURE:g}]"),
            ("top_k", self.top_k is None or self.top_k >= 1, "must be >= 1"),
            ("top_p", self.top_p is None or 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("min_p", self.min_p is None or 0 <= self.min_p <= 1, "must be in [0, 1]"),
            ("repetition_penalty", low <= self.repetition_penalty <= high, f"must be in [{low:g}, {high:g}]"),
            ("presence_penalty", -2 <= self.presence_penalty <= 2, "must be in [-2, 2]"),
            ("frequency_penalty", -2 <= self.frequency_penalty <= 2, "must be in [-2, 2]"),
            ("max_tokens", self.max_tokens >= 0, "must be >= 0"),
            ("n", 1 <= self.n <= 128, "must be in [1, 128]"),
            ("logprobs", self.logprobs is None or 0 <= self.logprobs <= 20, "must be in [0, 20]"),
            ("prompt_logprobs", self.prompt_logprobs is None or 0 <= self.prompt_logprobs <= 20, "must be in [0, 20]"),
            ("seed", self.seed is None or 0 <= self.seed <= MAX_SEED, f"must be in [0, {MAX_SEED}]"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise LlmkitError(f"{name} {rule}, got {getattr(self, name)!r}")
        for token, bias in (self.logit_bias or {}).items():
            if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
                raise LlmkitError(f"logit_bias values must be numbers in [-100, 100], got {bias!r} for token {token}")
        if 0 < self.temperature < MIN_TEMPERATURE:
            self.temperature = MIN_TEMPERATURE
        if isinstance(self.stop, str):
            self.stop = [self.stop]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def penalised(self) -> bool:
        """Whether the logits are changed before the draw (penalties or a logit bias)."""
        return (self.repetition_penalty != 1 or self.presence_penalty != 0 or self.frequency_penalty != 0
                or bool(self.logit_bias))
