"""Beam search with length penalty and early stopping, on the static KV cache.

Follows the scoring that transformers uses, so results match `generate(num_beams=...)`:
- each step keeps the (n_stop + 1) x num_beams best continuations of all beams by summed log-prob;
- a continuation that ends (a stop token, or the last allowed step) and ranks within the first
  num_beams becomes a finished hypothesis scored sum_logprob / generated_length ** length_penalty
  (the stop token counts in the length); the best num_beams finished ones are kept;
- the best num_beams continuations that did not end are the next beams (their cache rows are
  reordered to follow their parents);
- early_stopping=True stops once num_beams hypotheses are finished; False stops when the best running
  beam, scored at its current length, cannot beat the worst finished one; "never" assumes the
  longest possible length for a positive length penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmkit.decode.kv_cache import StaticKVCache
from llmkit.decode.placement import model_device


@dataclass
class Hypothesis:
    token_ids: list[int]  # generated tokens, stop token excluded
    score: float  # length-penalised log-probability


class _Finished:
    def __init__(self, num_beams: int):
        self.num_beams, self.items = num_beams, []

    def add(self, tokens: list[int], score: float) -> None:
        self.items.append(Hypothesis(tokens, score))
        self.items.sort(key=lambda h: -h.score)
        del self.items[self.num_beams:]

    @property
    def full(self) -> bool:
        return len(self.items) >= self.num_beams

    @property
    def worst(self) -> float:
        return self.items[-1].score if self.full else float("-inf")


@torch.inference_mode()
def beam_search(model, prompt: list[int], num_beams: int = 4, max_new_tokens: int = 32, length_penalty: float = 1.0,
                early_stopping: bool | str = True, stop_ids=frozenset()) -> list[Hypothesis]:
    """Finished hypotheses for one prompt, best first (at most num_beams)."""
    device = model_device(model)
    cache = StaticKVCache.for_model(model, num_beams, len(prompt) + max_new_tokens)
    tokens = torch.tensor([prompt] * num_beams, device=device)  # (K, T)
    logits = model(tokens, pos=torch.arange(len(prompt), device=device).expand(num_beams, -1), cache=cache)[:, -1]
    scores = torch.full((num_beams,), float("-inf"), device=device)
    scores[0] = 0.0  # all beams start identical: expand only the first
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    finished, stop_ids = _Finished(num_beams), set(stop_ids)
    keep = (len(stop_ids) + 1) * num_beams
    for step in range(max_new_tokens):
        length = step + 1  # generated tokens once this step's token is added
        total = (scores[:, None] + logits.float().log_softmax(-1)).flatten()  # (K * V,)
        top_scores, top_idx = total.topk(min(keep, total.numel()))
        vocab = logits.shape[-1]
        running = []
        for rank, (score, idx) in enumerate(zip(top_scores.tolist(), top_idx.tolist(), strict=True)):
            parent, token = divmod(idx, vocab)
            if token in stop_ids or length == max_new_tokens:
                may_add = not (finished.full and early_stopping is True)
                if rank < num_beams and may_add and score > float("-inf"):
                    kept = beams[parent] if token in stop_ids else beams[parent] + [token]
                    finished.add(kept, score / length**length_penalty)
            elif len(running) < num_beams:
                running.append((score, parent, token))
        if not running or _done(finished, running[0][0], length, max_new_tokens, length_penalty, early_stopping):
            break
        parents = torch.tensor([p for _, p, _ in running], device=device)
        cache.k, cache.v = cache.k[:, parents], cache.v[:, parents]  # rows follow their parent beams
        beams = [beams[p] + [t] for _, p, t in running]
        scores = torch.tensor([s for s, _, _ in running], device=device)
        next_tokens = torch.tensor([[t] for _, _, t in running], device=device)  # (K, 1)
        pos = torch.full((num_beams, 1), len(prompt) + step, device=device)
        logits = model(next_tokens, pos=pos, cache=cache)[:, -1]
    return finished.items


def _done(finished: _Finished, best_running: float, length: int, max_new_tokens: int, length_penalty: float,
          early_stopping: bool | str) -> bool:
    if not finished.full:
        return False
    if early_stopping is True:
        return True
    hypothetical = max_new_tokens if early_stopping == "never" and length_penalty > 0 else length
    return finished.worst >= best_running / hypothetical**length_penalty
