"""Speculative decoding with a draft model (Leviathan et al., arXiv 2211.17192; Chen et al.,
arXiv 2302.01318).

Each round the draft proposes k tokens one by one; the target scores all of them in one forward
pass. Token i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection a
token is drawn from norm(max(0, p_i - q_i)) and the round ends; if all k pass, one more is drawn
from the target's next distribution. The output is distributed exactly as the target's own
sampling (p and q are the processed distributions of llmkit.decode.sampler: temperature, top-k, top-p,
min-p). Greedy is the
limit: accept while the draft's token is the target's argmax, then take the target's argmax, so
the output equals the target's greedy output token for token.

Both models keep a static KV cache indexed by position: rejected positions are overwritten by
later tokens and never attended, so rolling back costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmkit.errors import LlmkitError
from llmkit.decode.kv_cache import StaticKVCache
from llmkit.decode.placement import model_device
from llmkit.decode.sampler import token_distribution
from llmkit.decode.sampling_params import SamplingParams


@dataclass
class SpeculativeStats:
    rounds: int = 0
    proposed: int = 0
    accepted: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


def accept_or_resample(p: torch.Tensor, q: torch.Tensor, draft_tokens: list[int], generator=None) -> tuple[int, int]:
    """p (k+1, V) target and q (k, V) draft distributions for draft_tokens (k). Returns (number of
    draft tokens accepted, the token that follows them)."""
    for i, token in enumerate(draft_tokens):
        ratio = p[i, token] / q[i, token]
        if torch.rand((), generator=generator) < ratio:  # ratio >= 1 always accepts
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        total = residual.sum()
        following = p[i] if total <= 0 else residual / total
        return i, int(torch.multinomial(following, 1, generator=generator))
    return len(draft_tokens), int(torch.multinomial(p[-1], 1, generator=generator))


@torch.inference_mode()
def speculative_generate(target, draft, prompt: list[int], max_new_tokens: int, k: int = 4,
                         sampling: SamplingParams | None = None, stop_ids=frozenset()) -> tuple[list[int], SpeculativeStats]:
    """New tokens for one prompt (stop token excluded) and acceptance statistics."""
    if target.cfg.vocab_size != draft.cfg.vocab_size:
        raise LlmkitError(f"draft vocabulary {draft.cfg.vocab_size} differs from the target's "
                          f"{target.cfg.vocab_size}: they must share a tokenizer")
    sampling = sampling or SamplingParams()
    device = model_device(target)
    generator = None if sampling.seed is None else torch.Generator(device).manual_seed(sampling.seed)
    max_len = len(prompt) + max_new_tokens + k + 1
    caches = {m: StaticKVCache.for_model(m, 1, max_len) for m in (target, draft)}
    stats, out = SpeculativeStats(), []

    def feed(model, tokens: list[int], start: int) -> torch.Tensor:
        ids = torch.tensor([tokens], device=device)
        pos = torch.arange(start, start + len(tokens), device=device)[None]
        return model(ids, pos=pos, cache=caches[model])[0]  # (T, V)

    p_next = token_distribution(feed(target, prompt, 0)[-1], sampling)
    if len(prompt) > 1:
        feed(draft, prompt[:-1], 0)
    draft_pending, n = [prompt[-1]], len(prompt)  # draft_pending: tokens the draft has not seen yet
    first = int(torch.multinomial(p_next, 1, generator=generator))
    pending = first  # the newest token: in neither cache yet, at position n
    while True:
        if pending in stop_ids or len(out) >= max_new_tokens:
            break
        out.append(pending)
        draft_pending.append(pending)
        steps = min(k, max_new_tokens - len(out))
        if steps == 0:
            break
        proposal, q = [], []
        start = n - len(draft_pending) + 1
        for _ in range(steps):
            logits = feed(draft, draft_pending, start)[-1]
            start += len(draft_pending)
            q.append(token_distribution(logits, sampling))
            token = int(torch.multinomial(q[-1], 1, generator=generator))
            proposal.append(token)
            draft_pending = [token]
        p = token_distribution(feed(target, [pending, *proposal], n), sampling)  # (steps + 1, V)
        accepted, following = accept_or_resample(p, torch.stack(q), proposal, generator)
        stats.rounds, stats.proposed, stats.accepted = stats.rounds + 1, stats.proposed + steps, stats.accepted + accepted
        for token in proposal[:accepted]:
            if token in stop_ids or len(out) >= max_new_tokens:
                return out, stats
            out.append(token)
        n += 1 + accepted
        # The draft saw proposal[:-1]; if everything was accepted it still needs the last proposal.
        draft_pending = [proposal[-1]] if accepted == steps else []
        pending = following
    return out, stats
