"""Runs one scheduler step on the model: builds padded inputs, positions and paged-cache views,
and returns last-position logits for the requests that need a token sampled, and the prompt
tokens' log-probabilities for requests that asked for them.

Decoding requests (one new token each) run as one batch; prefill chunks run apart from them (a
512-token chunk never pads 63 one-token decodes to 512 rows), batched with chunks of similar
length where padding wastes at most a quarter of the batch (a batch of few-shot prompts prefills
in one pass). Only positions that are sampled go through the output head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from llmkit.decode.paged_cache import PagedDecodeStep, PagedKVCache, PagedStep
from llmkit.decode.placement import model_device
from llmkit.decode.sampler import token_logprobs
from llmkit.decode.scheduler import Request

SCORE_ROWS = 1024  # prompt positions sent through the output head at once (bounds the (n, V) logits)


@dataclass
class StepOutput:
    logits: dict[str, torch.Tensor] = field(default_factory=dict)  # request id -> (V,) to sample from
    prompt_logprobs: dict[str, dict[int, dict]] = field(default_factory=dict)  # id -> {position: score}

    def update(self, other: StepOutput) -> None:
        self.logits.update(other.logits)
        for rid, scores in other.prompt_logprobs.items():
            self.prompt_logprobs.setdefault(rid, {}).update(scores)


class ModelRunner:
    def __init__(self, model, cache: PagedKVCache, select_adapters=None):
        self.model, self.cache, self.select_adapters = model, cache, select_adapters
        self.device = model_device(model)
        self.prefix_decoder = model.cfg.arch == "prefix_decoder"
        # Position biases (ALiBi, T5 buckets), soft-capped scores, per-layer windows and learned
        # key/value prefixes live in the model's own attention and masks, which the decode kernel skips.
        cfg = model.cfg
        prefixed = any(getattr(m, "prefix", None) is not None for m in model.modules())
        self.decode_kernel = cfg.position not in ("alibi", "t5_relative") and not cfg.attn_softcap \
            and not cfg.layer_types and not prefixed

    @torch.inference_mode()
    def execute(self, work: list[tuple[Request, int, list[int]]]) -> StepOutput:
        """work: (request, tokens to compute this step, block table). Returns logits (V,) for the
        requests whose step ends at their last token, and prompt scores where asked."""
        decodes = [w for w in work if w[1] == 1]
        chunks = [w for w in work if w[1] > 1]  # fresh prompts apart: they attend with the fused causal kernel
        groups = ([decodes] if decodes else []) + prefill_groups([w for w in chunks if w[0].num_computed_tokens == 0]) \
            + prefill_groups([w for w in chunks if w[0].num_computed_tokens > 0])
        out = StepOutput()
        for group in groups:
            out.update(self._run(group))
        return out

    def _score_prompts(self, group, hidden: torch.Tensor) -> dict[str, dict[int, dict]]:
        """hidden (B, T, C) of this step's positions; for each request that scores its prompt, the
        scores of the prompt tokens these positions predict, keyed by the token's position. The
        scored positions of the whole group go through the output head together."""
        picks: list[tuple[str, int, int, int, int]] = []  # (request id, row, first position, end, top)
        targets: list[int] = []
        for row, (request, n, _) in enumerate(group):
            scoring = request.scoring
            if scoring is None:
                continue
            start = request.num_computed_tokens
            low, high = max(start, scoring.first - 1), min(start + n, len(scoring.ids) - 1)
            if low < high:
                picks.append((request.id, row, low - start, high - start, scoring.top))
                targets.extend(scoring.ids[low + 1: high + 1])
        if not picks:
            return {}
        rows = torch.cat([torch.arange(lo, hi) for _, _, lo, hi, _ in picks])  # (N,) column in hidden
        owners = torch.cat([torch.full((hi - lo,), row) for _, row, lo, hi, _ in picks])  # (N,)
        top = max(p[4] for p in picks)
        found = []
        for at in range(0, len(rows), SCORE_ROWS):
            chosen = hidden[owners[at: at + SCORE_ROWS], rows[at: at + SCORE_ROWS]]  # (m, C)
            found += token_logprobs(self.model.lm_head(chosen), targets[at: at + SCORE_ROWS], top)
        scores: dict[str, dict[int, dict]] = {}
        at = 0
        for rid, row, lo, hi, k in picks:
            start = group[row][0].num_computed_tokens
            for offset, score in enumerate(found[at: at + hi - lo]):
                if len(score["top"]) > k:
                    score["top"] = dict(list(score["top"].items())[:k])
                scores.setdefault(rid, {})[start + lo + offset + 1] = score
            at += hi - lo
        return scores

    def _decode_step(self, group) -> tuple[torch.Tensor, torch.Tensor, PagedDecodeStep]:
        """Inputs for a batch of one-token decodes attended by the paged kernel."""
        width = max(len(table) for _, _, table in group)
        tables = torch.zeros(len(group), width, dtype=torch.long)
        for row, (_, _, table) in enumerate(group):
            tables[row, : len(table)] = torch.tensor(table)
        computed = torch.tensor([r.num_computed_tokens for r, _, _ in group])  # (B,) the new token's position
        tokens = torch.tensor([[r.token_ids[r.num_computed_tokens]] for r, _, _ in group])  # (B, 1)
        rows = torch.arange(len(group))
        write = tables[rows, computed // self.cache.block_size] * self.cache.block_size + computed % self.cache.block_size
        to = lambda t: t.to(self.device, non_blocking=True)
        step = PagedDecodeStep(self.cache, to(write), to(tables), to(computed + 1), self.model.cfg.sliding_window)
        return to(tokens), to(computed[:, None]), step

    def _run(self, group: list[tuple[Request, int, list[int]]]) -> StepOutput:
        if self.select_adapters is not None:  # each row's LoRA adapter, for the model's multi-LoRA layers
            self.select_adapters([r.adapter_slot for r, _, _ in group])
        if self.decode_kernel and all(n == 1 for _, n, _ in group) and not self.prefix_decoder:
            tokens, pos, step = self._decode_step(group)
            hidden = self.model.hidden_states(tokens, pos=pos, cache=step)  # (B, 1, C)
            logits = self.model.lm_head(hidden[:, 0])  # (B, V)
            return StepOutput({r.id: logits[i] for i, (r, _, _) in enumerate(group)
                               if r.num_computed_tokens + 1 == r.num_tokens}, self._score_prompts(group, hidden))
        batch, width = len(group), max(n for _, n, _ in group)
        context = max(r.num_computed_tokens + n for r, n, _ in group)
        tokens = torch.zeros(batch, width, dtype=torch.long)
        pos = torch.full((batch, width), -1, dtype=torch.long)
        write = torch.full((batch, width), -1, dtype=torch.long)
        key_slots = torch.full((batch, context), -1, dtype=torch.long)
        key_pos = torch.full((batch, context), -1, dtype=torch.long)
        for row, (request, n, table) in enumerate(group):
            start, end = request.num_computed_tokens, request.num_computed_tokens + n
            tokens[row, :n] = torch.tensor(request.token_ids[start:end])
            pos[row, :n] = torch.arange(start, end)
            write[row, :n] = self.cache.slots(table, start, end)
            key_slots[row, :end] = self.cache.slots(table, 0, end)
            key_pos[row, :end] = torch.arange(end)
        to = lambda t: t.to(self.device, non_blocking=True)
        fresh = all(r.num_computed_tokens == 0 for r, _, _ in group)  # keys are the queries: fused causal SDPA
        step = PagedStep(self.cache, to(write), to(key_slots), to(key_pos), fresh)
        prefix_len = None
        if self.prefix_decoder:
            # the prompt attends both ways; a scored prompt's tokens from the first scored one are causal
            prefix_len = to(torch.tensor([len(r.prompt_ids) if r.scoring is None else r.scoring.first
                                          for r, _, _ in group]))
        hidden = self.model.hidden_states(to(tokens), pos=to(pos), cache=step, prefix_len=prefix_len)  # (B, T, C)
        out = StepOutput(prompt_logprobs=self._score_prompts(group, hidden))
        wanted = [(row, n - 1) for row, (r, n, _) in enumerate(group) if r.num_computed_tokens + n == r.num_tokens]
        if wanted:
            rows, cols = zip(*wanted, strict=True)
            last = self.model.lm_head(hidden[list(rows), list(cols)])  # (K, V)
            out.logits = {group[row][0].id: last[i] for i, row in enumerate(rows)}
        return out


PADDING_ALLOWED = 1.25  # a prefill batch may compute at most this many token slots per real token
SMALL_PASS = 256  # ... or pad freely up to this many slots: a pass this small costs its overhead, not its rows


def prefill_groups(chunks: list[tuple[Request, int, list[int]]]) -> list[list[tuple[Request, int, list[int]]]]:
    """Prefill chunks in batches of similar length (shortest first): a chunk joins the current batch
    while batch size x longest chunk stays within PADDING_ALLOWED x the tokens really computed, or
    within SMALL_PASS slots."""
    groups: list[list] = []
    for chunk in sorted(chunks, key=lambda w: w[1]):
        group = groups[-1] if groups else None
        slots = (len(group) + 1) * chunk[1] if group else 0
        if group and (slots <= SMALL_PASS or slots <= PADDING_ALLOWED * (sum(w[1] for w in group) + chunk[1])):
            group.append(chunk)
        else:
            groups.append([chunk])
    return groups
