"""Next tokens for a batch of requests, each with its own SamplingParams and generator.

Order per row: penalties on the raw logits, then temperature, top-k, top-p, min-p (arXiv
2407.01082), then a draw from the request's generator. Greedy rows without penalties share one
argmax. Log-probabilities are those of the model's own distribution (before any processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmkit.infer.sampling import filter_logits
from llmkit.infer.sampling_params import SamplingParams


@dataclass
class RowState:
    params: SamplingParams
    generator: torch.Generator | None
    prompt_ids: list[int]
    output_ids: list[int]


@dataclass
class Sampled:
    token: int
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


def apply_penalties(logits: torch.Tensor, row: RowState) -> torch.Tensor:
    """Repetition penalty over prompt and output (HF semantics); presence and frequency penalties
    over the output (OpenAI semantics). logits (V,) float."""
    p = row.params
    if p.repetition_penalty != 1:
        seen = torch.tensor(sorted(set(row.prompt_ids) | set(row.output_ids)), dtype=torch.long)
        picked = logits[seen]
        logits[seen] = torch.where(picked > 0, picked / p.repetition_penalty, picked * p.repetition_penalty)
    if row.output_ids and (p.presence_penalty or p.frequency_penalty):
        counts = torch.bincount(torch.tensor(row.output_ids), minlength=logits.shape[-1])[: logits.shape[-1]]
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0)
    return logits


def _choose(logits: torch.Tensor, row: RowState) -> int:
    p = row.params
    if p.penalised:
        logits = apply_penalties(logits.clone(), row)
    if p.greedy:
        return int(logits.argmax())
    scaled = filter_logits(logits[None] / p.temperature, p.top_k, p.top_p)[0]  # (V,)
    probs = scaled.softmax(-1)
    if p.min_p:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    return int(torch.multinomial(probs, 1, generator=row.generator))


def sample(logits: torch.Tensor, rows: list[RowState]) -> list[Sampled]:
    """One token per row of logits (B, V)."""
    logits = logits.float()
    plain_greedy = [i for i, r in enumerate(rows) if r.params.greedy and not r.params.penalised]
    tokens: dict[int, int] = {}
    if plain_greedy:
        argmax = logits[plain_greedy].argmax(-1).tolist()
        tokens.update(zip(plain_greedy, argmax, strict=True))
    results = []
    for i, row in enumerate(rows):
        token = tokens[i] if i in tokens else _choose(logits[i], row)
        k = row.params.logprobs
        if k is None:
            results.append(Sampled(token))
            continue
        logp = logits[i].log_softmax(-1)  # (V,)
        top = logp.topk(k) if k else None
        top_map = dict(zip(top.indices.tolist(), top.values.tolist(), strict=True)) if top is not None else {}
        results.append(Sampled(token, float(logp[token]), top_map))
    return results
