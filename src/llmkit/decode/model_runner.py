"""Runs one scheduler step on the model: builds padded inputs, positions and paged-cache views,
and returns last-position logits for the requests that need a token sampled.

Decoding requests (one new token each) run as one batch; prefill chunks run apart from them (a
512-token chunk never pads 63 one-token decodes to 512 rows), batched with chunks of similar
length where padding wastes at most a quarter of the batch (a batch of few-shot prompts prefills
in one pass). Only positions that are sampled go through the output head.
"""

from __future__ import annotations

import torch

from llmkit.decode.paged_cache import PagedDecodeStep, PagedKVCache, PagedStep
from llmkit.decode.placement import model_device
from llmkit.decode.scheduler import Request


class ModelRunner:
    def __init__(self, model, cache: PagedKVCache):
        self.model, self.cache = model, cache
        self.device = model_device(model)
        self.prefix_decoder = model.cfg.arch == "prefix_decoder"
        # Position biases (ALiBi, T5 buckets), soft-capped scores, per-layer windows and learned
        # key/value prefixes live in the model's own attention and masks, which the decode kernel skips.
        cfg = model.cfg
        prefixed = any(getattr(m, "prefix", None) is not None for m in model.modules())
        self.decode_kernel = cfg.position not in ("alibi", "t5_relative") and not cfg.attn_softcap \
            and not cfg.layer_types and not prefixed

    @torch.inference_mode()
    def execute(self, work: list[tuple[Request, int, list[int]]]) -> dict[str, torch.Tensor]:
        """work: (request, tokens to compute this step, block table). Returns request id -> logits (V,)
        for the requests whose step ends at their last token."""
        decodes = [w for w in work if w[1] == 1]
        groups = ([decodes] if decodes else []) + prefill_groups([w for w in work if w[1] > 1])
        logits: dict[str, torch.Tensor] = {}
        for group in groups:
            logits.update(self._run(group))
        return logits

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

    def _run(self, group: list[tuple[Request, int, list[int]]]) -> dict[str, torch.Tensor]:
        if self.decode_kernel and all(n == 1 for _, n, _ in group) and not self.prefix_decoder:
            tokens, pos, step = self._decode_step(group)
            hidden = self.model.hidden_states(tokens, pos=pos, cache=step)  # (B, 1, C)
            logits = self.model.lm_head(hidden[:, 0])  # (B, V)
            return {r.id: logits[i] for i, (r, _, _) in enumerate(group) if r.num_computed_tokens + 1 == r.num_tokens}
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
        step = PagedStep(self.cache, to(write), to(key_slots), to(key_pos))
        prefix_len = None
        if self.prefix_decoder:
            prefix_len = to(torch.tensor([len(r.prompt_ids) for r, _, _ in group]))
        hidden = self.model.hidden_states(to(tokens), pos=to(pos), cache=step, prefix_len=prefix_len)  # (B, T, C)
        wanted = [(row, n - 1) for row, (r, n, _) in enumerate(group) if r.num_computed_tokens + n == r.num_tokens]
        if not wanted:
            return {}
        rows, cols = zip(*wanted, strict=True)
        last = hidden[list(rows), list(cols)]  # (K, C)
        out = self.model.lm_head(last)  # (K, V)
        return {group[row][0].id: out[i] for i, row in enumerate(rows)}


PADDING_ALLOWED = 1.25  # a prefill batch may compute at most this many token slots per real token


def prefill_groups(chunks: list[tuple[Request, int, list[int]]]) -> list[list[tuple[Request, int, list[int]]]]:
    """Prefill chunks in batches of similar length (shortest first): a chunk joins the current batch
    while batch size x longest chunk stays within PADDING_ALLOWED x the tokens really computed."""
    groups: list[list] = []
    for chunk in sorted(chunks, key=lambda w: w[1]):
        group = groups[-1] if groups else None
        if group and (len(group) + 1) * chunk[1] <= PADDING_ALLOWED * (sum(w[1] for w in group) + chunk[1]):
            group.append(chunk)
        else:
            groups.append([chunk])
    return groups
