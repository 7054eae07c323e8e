"""The one sampler: next tokens for a batch of requests, each with its own SamplingParams and
generator. Greedy, temperature, top-k (arXiv 1805.04833), nucleus/top-p (arXiv 1904.09751) and
min-p; speculative decoding draws from the same processed distribution (`token_distribution`).

Order per row: penalties on the raw logits, then temperature, top-k, top-p, min-p (arXiv
2407.01082), then a draw from the request's generator. Greedy rows without penalties share one
argmax. Log-probabilities are those of the model's own distribution (before any processing).

A row that cannot be sampled (the model produced no finite logit) gets an error instead of a token,
so the engine fails that request alone: NaN logits count as impossible tokens, +inf as certain
ones, and scaling subtracts the row's maximum first so no temperature or penalty can overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmkit.decode.sampling_params import SamplingParams


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
    error: str | None = None  # this row could not be sampled; the request should fail alone

MIN_LOGPROB = -9999.0  # what OpenAI reports for impossible tokens (JSON has no -Infinity)


def finite_logits(logits: torch.Tensor) -> torch.Tensor:
    """NaN -> -inf (impossible); a row holding +inf keeps only those tokens, at 0. logits (..., V)."""
    if torch.isfinite(logits).all():
        return logits
    logits = torch.nan_to_num(logits, nan=float("-inf"), posinf=float("inf"))
    certain = torch.isposinf(logits).any(-1, keepdim=True)  # (..., 1)
    return torch.where(certain, torch.where(torch.isposinf(logits), 0.0, float("-inf")), logits)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the smallest set of mass >= top_p."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        outside = probs.cumsum(dim=-1) - probs >= top_p  # mass before this token already reaches top_p
        outside[..., 0] = False  # the most likely token always stays (a top_p below float32's range is 0)
        logits = logits.masked_fill(outside.scatter(-1, order, outside), float("-inf"))
    return logits


def token_distribution(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The distribution a token is drawn from, (..., V) from logits (..., V) with at least one finite
    value per row: one-hot at the argmax when greedy; else temperature, top-k, top-p, then min-p."""
    if params.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits.float()
    shifted = (logits - logits.max(-1, keepdim=True).values) / params.temperature  # <= 0: cannot overflow
    probs = filter_logits(shifted, params.top_k, params.top_p).softmax(-1)
    if params.min_p:
        probs = probs.masked_fill(probs < params.min_p * probs.max(-1, keepdim=True).values, 0.0)
    return probs


def apply_penalties(logits: torch.Tensor, row: RowState) -> torch.Tensor:
    """Repetition penalty over prompt and output (HF semantics); presence and frequency penalties
    over the output and the logit bias (OpenAI semantics). logits (V,) float."""
    p = row.params
    if p.logit_bias:
        ids = torch.tensor([t for t in p.logit_bias if 0 <= t < logits.shape[-1]], dtype=torch.long)
        logits[ids] += torch.tensor([p.logit_bias[t] for t in ids.tolist()], dtype=logits.dtype)
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
        logits = finite_logits(apply_penalties(logits.clone(), row))
    if not torch.isfinite(logits.max()):
        raise ValueError("the model produced no finite logit for this request")
    if p.greedy:
        return int(logits.argmax())
    return int(torch.multinomial(token_distribution(logits, p), 1, generator=row.generator))


def sample(logits: torch.Tensor, rows: list[RowState]) -> list[Sampled]:
    """One token per row of logits (B, V); a row that fails carries an error instead."""
    logits = finite_logits(logits.float())
    usable = torch.isfinite(logits.max(-1).values).tolist()  # (B,) rows with at least one possible token
    plain_greedy = [i for i, r in enumerate(rows) if r.params.greedy and not r.params.penalised and usable[i]]
    tokens: dict[int, int] = {}
    if plain_greedy:
        argmax = logits[plain_greedy].argmax(-1).tolist()
        tokens.update(zip(plain_greedy, argmax, strict=True))
    results = []
    for i, row in enumerate(rows):
        try:
            token = tokens[i] if i in tokens else _choose(logits[i], row)
        except (ValueError, RuntimeError) as error:  # this request alone fails
            results.append(Sampled(-1, error=str(error)))
            continue
        results.append(_with_logprobs(logits[i], token, row.params.logprobs))
    return results


def _with_logprobs(logits: torch.Tensor, token: int, k: int | None) -> Sampled:
    if k is None:
        return Sampled(token)
    scored = token_logprobs(logits[None], [token], k)[0]
    return Sampled(token, scored["logprob"], scored["top"])


def token_logprobs(logits: torch.Tensor, targets: list[int], k: int) -> list[dict]:
    """Scores of given tokens (a sampled token's, or the prompt's own): logits (n, V), one target per row ->
    per row {"token", "logprob", "rank" (1: the model's argmax), "top": the k likeliest {id: logprob}}."""
    logp = logits.float().log_softmax(-1)  # (n, V)
    ids = torch.tensor(targets, device=logp.device)[:, None]  # (n, 1)
    broken = logp.gather(-1, ids).isnan()[:, 0]  # (n,) rows with a NaN or +inf logit: only those are fixed
    if broken.any():
        logp[broken] = finite_logits(logits[broken].float()).log_softmax(-1)
    logp = logp.clamp_(min=MIN_LOGPROB)
    picked = logp.gather(-1, ids)  # (n, 1)
    ranks = ((logp > picked).sum(-1) + 1).tolist()  # (n,)
    top = logp.topk(k, dim=-1) if k else None
    rows = []
    for i, (token, value) in enumerate(zip(targets, picked[:, 0].tolist(), strict=True)):
        alternatives = dict(zip(top.indices[i].tolist(), top.values[i].tolist(), strict=True)) if top is not None else {}
        rows.append({"token": token, "logprob": value, "rank": ranks[i], "top": alternatives})
    return rows
