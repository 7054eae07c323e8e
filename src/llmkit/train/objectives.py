"""Pre-training objectives, each a Task: `make_batch` turns token windows into model inputs,
targets and masks; `loss` returns (sum of token losses, number of target tokens) so that gradient
accumulation and data parallelism can normalise by the true token count of the whole step.

    clm              next-token prediction on every position (GPT)
    prefix_lm        bidirectional random-length prefix, loss on the continuation only (U-PaLM's
                     prefix LM, arXiv 2210.11399); needs a prefix decoder
    span_corruption  T5 (arXiv 1910.10683): ~15% of tokens in spans of mean 3 replaced by sentinels
                     in the encoder input; the decoder writes sentinel + span for each span
    blank_infilling  GLM (arXiv 2103.10360): part A = text with [MASK] per span (bidirectional),
                     part B = [sop] span for each span in random order (causal); loss on part B.
                     1-D positions (GLM's 2-D positional encoding is not reproduced)
    mlm              BERT (arXiv 1810.04805): 15% of positions chosen, 80% -> [MASK], 10% -> random,
                     10% kept; loss on the chosen positions; fully bidirectional attention
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmkit.errors import LlmkitError
from llmkit.train.cross_entropy import summed_cross_entropy
from llmkit.train.task import IGNORE_INDEX, StatelessTask


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    eos: int
    bos: int
    mask: int
    sentinels: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> SpecialIds:
        ids = tokenizer.special_ids()
        return cls(ids["pad"], ids["eos"], ids["bos"], ids["mask"], tuple(ids["sentinels"]))


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over targets != IGNORE_INDEX, and how many there are."""
    return summed_cross_entropy(logits, targets), int((targets != IGNORE_INDEX).sum())


class CausalLM(StatelessTask):
    name = "clm"

    def make_batch(self, inputs, targets, generator=None) -> dict:
        return {"tokens": inputs, "targets": targets}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        return token_loss(model(batch["tokens"]), batch["targets"])


class PackedCausalLM(CausalLM):
    """Next-token loss on packed rows: inputs is {"tokens", "pos", "segments"} (B, T) each, positions
    restarting and attention confined within each document (llmkit.finetune.sft_data.PackedSFTLoader)."""

    name = "clm_packed"

    def make_batch(self, inputs: dict, targets, generator=None) -> dict:
        return inputs | {"targets": targets}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        logits = model(batch["tokens"], pos=batch["pos"], segments=batch["segments"])
        return token_loss(logits, batch["targets"])


class PrefixLM(CausalLM):
    name = "prefix_lm"

    def make_batch(self, inputs, targets, generator=None) -> dict:
        batch, length = inputs.shape
        prefix = torch.randint(1, length, (batch,), generator=generator)  # (B,) in [1, T-1]
        positions = torch.arange(length)[None, :]
        masked = targets.masked_fill(positions < prefix[:, None] - 1, IGNORE_INDEX)  # predict x[p:] only
        return {"tokens": inputs, "targets": masked, "prefix_len": prefix}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        return token_loss(model(batch["tokens"], prefix_len=batch["prefix_len"]), batch["targets"])


def sample_spans(length: int, generator, density: float = 0.15, mean_span: float = 3.0,
                 max_spans: int | None = None) -> list[tuple[int, int]]:
    """Non-overlapping, non-adjacent (start, end) spans covering about `density` of `length` tokens."""
    n_noise = max(1, round(length * density))
    n_spans = max(1, round(n_noise / mean_span))
    if max_spans is not None:
        n_spans = min(n_spans, max_spans)
    lengths = torch.ones(n_spans, dtype=torch.long)
    for i in torch.randint(0, n_spans, (n_noise - n_spans,), generator=generator).tolist():
        lengths[i] += 1  # a random split of n_noise into n_spans positive parts
    gaps_total = length - n_noise
    cuts = sorted(torch.randperm(max(1, gaps_total - 1), generator=generator)[: n_spans].add(1).tolist())
    spans, position, previous_cut = [], 0, 0
    for cut, span_len in zip(cuts, lengths.tolist()):
        position += cut - previous_cut
        previous_cut = cut
        spans.append((position, position + span_len))
        position += span_len
    return [(s, min(e, length)) for s, e in spans if s < length]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


class SpanCorruption(StatelessTask):
    name = "span_corruption"

    def __init__(self, ids: SpecialIds, density: float = 0.15, mean_span: float = 3.0):
        if not ids.sentinels:
            raise LlmkitError("span corruption needs sentinel tokens in the tokenizer (<|sentinel_0|>, ...)")
        self.ids, self.density, self.mean_span = ids, density, mean_span

    def corrupt(self, tokens: list[int], generator) -> tuple[list[int], list[int]]:
        """(encoder input, decoder target) for one sequence."""
        spans = sample_spans(len(tokens), generator, self.density, self.mean_span, len(self.ids.sentinels))
        source, target, position = [], [], 0
        for k, (start, end) in enumerate(spans):
            source += tokens[position:start] + [self.ids.sentinels[k]]
            target += [self.ids.sentinels[k]] + tokens[start:end]
            position = end
        return source + tokens[position:], target + [self.ids.eos]

    def make_batch(self, inputs, targets, generator=None) -> dict:
        pairs = [self.corrupt(row, generator) for row in inputs.tolist()]
        src = _pad([s for s, _ in pairs], self.ids.pad)
        src_valid = _pad([[1] * len(s) for s, _ in pairs], 0).bool()
        target = _pad([t for _, t in pairs], IGNORE_INDEX)
        decoder_in = _pad([[self.ids.pad] + t[:-1] for _, t in pairs], self.ids.pad)  # shifted right
        return {"src": src, "src_valid": src_valid, "tokens": decoder_in, "targets": target}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        if model.cfg.arch != "encoder_decoder":
            raise LlmkitError("span_corruption trains encoder-decoder models (e.g. --model tiny-t5)")
        return token_loss(model(batch["src"], batch["tokens"], batch["src_valid"]), batch["targets"])


class BlankInfilling(StatelessTask):
    name = "blank_infilling"

    def __init__(self, ids: SpecialIds, density: float = 0.15, mean_span: float = 3.0):
        self.ids, self.density, self.mean_span = ids, density, mean_span

    def corrupt(self, tokens: list[int], generator) -> tuple[list[int], list[int], int]:
        """(input, targets, prefix length): part A with [MASK] per span, then part B."""
        spans = sample_spans(len(tokens), generator, self.density, self.mean_span)
        part_a, position = [], 0
        for start, end in spans:
            part_a += tokens[position:start] + [self.ids.mask]
            position = end
        part_a += tokens[position:]
        order = torch.randperm(len(spans), generator=generator).tolist()  # GLM shuffles the spans
        b_in, b_target = [], []
        for k in order:
            span = tokens[spans[k][0]:spans[k][1]]
            b_in += [self.ids.bos] + span  # [sop] starts each blank
            b_target += span + [self.ids.eos]  # and [eop] ends it
        inputs = part_a + b_in
        targets = [IGNORE_INDEX] * len(part_a) + b_target
        return inputs, targets, len(part_a)

    def make_batch(self, inputs, targets, generator=None) -> dict:
        rows = [self.corrupt(row, generator) for row in inputs.tolist()]
        return {"tokens": _pad([r[0] for r in rows], self.ids.pad), "targets": _pad([r[1] for r in rows], IGNORE_INDEX),
                "prefix_len": torch.tensor([r[2] for r in rows])}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        if model.cfg.arch != "prefix_decoder":
            raise LlmkitError("blank_infilling trains prefix decoders (e.g. --model tiny-glm)")
        return token_loss(model(batch["tokens"], prefix_len=batch["prefix_len"]), batch["targets"])


class MaskedLM(StatelessTask):
    name = "mlm"

    def __init__(self, ids: SpecialIds, vocab_size: int, rate: float = 0.15):
        self.ids, self.vocab_size, self.rate = ids, vocab_size, rate

    def make_batch(self, inputs, targets, generator=None) -> dict:
        tokens = torch.cat([inputs, targets[:, -1:]], dim=1)[:, :-1]  # the window itself, unshifted
        chosen = torch.rand(tokens.shape, generator=generator) < self.rate
        action = torch.rand(tokens.shape, generator=generator)
        random_tokens = torch.randint(0, self.vocab_size, tokens.shape, generator=generator)
        corrupted = torch.where(chosen & (action < 0.8), self.ids.mask, tokens)
        corrupted = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_tokens, corrupted)
        return {"tokens": corrupted, "targets": tokens.masked_fill(~chosen, IGNORE_INDEX),
                "prefix_len": torch.full((tokens.shape[0],), tokens.shape[1])}  # all bidirectional

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        if model.cfg.arch != "prefix_decoder":
            raise LlmkitError("mlm needs bidirectional attention: use a prefix decoder (e.g. --model tiny-glm)")
        return token_loss(model(batch["tokens"], prefix_len=batch["prefix_len"]), batch["targets"])


def build_objective(name: str, tokenizer=None, vocab_size: int | None = None):
    if name == "clm":
        return CausalLM()
    if name == "prefix_lm":
        return PrefixLM()
    ids = SpecialIds.from_tokenizer(tokenizer)
    if name == "span_corruption":
        return SpanCorruption(ids)
    if name == "blank_infilling":
        return BlankInfilling(ids)
    if name == "mlm":
        return MaskedLM(ids, vocab_size)
    raise LlmkitError(f"unknown objective {name!r}")
