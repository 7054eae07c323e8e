"""Autoregressive generation with a static KV cache: one prefill of the (left-padded) prompts,
then one token per step for every unfinished row. Encoder-decoder models encode the prompt once
and decode from the start token."""

from __future__ import annotations

import torch

from llmkit.errors import LlmkitError
from llmkit.infer.kv_cache import StaticKVCache
from llmkit.infer.placement import model_device
from llmkit.infer.sampling import SamplingConfig, sample_next


def _check_lengths(model, prompts: list[list[int]], max_new_tokens: int) -> int:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise LlmkitError("every prompt must have at least one token")
    cfg, longest = model.cfg, max(len(p) for p in prompts)
    if cfg.position == "learned" and longest + max_new_tokens > cfg.max_seq_len:
        if longest >= cfg.max_seq_len:
            raise LlmkitError(f"prompt of {longest} tokens does not fit the context of {cfg.max_seq_len}")
        max_new_tokens = cfg.max_seq_len - longest
    return max_new_tokens


def _left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        tokens[row, width - len(prompt):] = torch.tensor(prompt, device=device)
    offsets = torch.tensor([width - len(p) for p in prompts], device=device)
    return tokens, offsets  # (B, T), (B,)


class _Stopper:
    """Tracks which rows are finished (stop token or budget) and collects their new tokens."""

    def __init__(self, batch: int, stop_ids: set[int]):
        self.stop_ids, self.outputs, self.done = stop_ids, [[] for _ in range(batch)], [False] * batch

    def add(self, next_tokens: torch.Tensor) -> bool:
        for row, token in enumerate(next_tokens.tolist()):
            if self.done[row]:
                continue
            if token in self.stop_ids:
                self.done[row] = True
            else:
                self.outputs[row].append(token)
        return all(self.done)


@torch.inference_mode()
def generate_ids(model, prompts: list[list[int]], max_new_tokens: int, sampling: SamplingConfig | None = None,
                 stop_ids: set[int] | frozenset[int] = frozenset(), pad_id: int = 0) -> list[list[int]]:
    """New token ids for each prompt (stop tokens excluded)."""
    sampling = sampling or SamplingConfig()
    max_new_tokens = _check_lengths(model, prompts, max_new_tokens)
    if model.cfg.arch == "encoder_decoder":
        return _generate_seq2seq(model, prompts, max_new_tokens, sampling, set(stop_ids), pad_id)
    device = model_device(model)
    generator = None if sampling.seed is None else torch.Generator(device).manual_seed(sampling.seed)
    tokens, offsets = _left_pad(prompts, pad_id, device)
    cache = StaticKVCache.for_model(model, len(prompts), tokens.shape[1] + max_new_tokens, offsets)
    prefix_len = torch.tensor([len(p) for p in prompts], device=device)  # used by prefix decoders only
    pos = torch.arange(tokens.shape[1], device=device)[None, :] - offsets[:, None]  # (B, T)
    stopper = _Stopper(len(prompts), set(stop_ids))
    logits = model(tokens, pos=pos, cache=cache, prefix_len=prefix_len)[:, -1]  # (B, V)
    switch, history = rope_switch_position(model.cfg), tokens
    for _ in range(max_new_tokens):
        next_tokens = sample_next(logits, sampling, generator)  # (B,)
        if stopper.add(next_tokens):
            break
        history = torch.cat([history, next_tokens[:, None]], dim=1)  # (B, T + generated)
        pos = pos[:, -1:] + 1  # (B, 1)
        if switch is not None and int(pos.max()) == switch:  # cached keys used the short factors: redo them
            cache = StaticKVCache.for_model(model, len(prompts), tokens.shape[1] + max_new_tokens, offsets)
            every = torch.arange(history.shape[1], device=device)[None, :] - offsets[:, None]  # (B, T')
            logits = model(history, pos=every, cache=cache, prefix_len=prefix_len)[:, -1]
            continue
        logits = model(next_tokens[:, None], pos=pos, cache=cache, prefix_len=prefix_len)[:, -1]
    return stopper.outputs


def rope_switch_position(cfg) -> int | None:
    """The first position at which LongRoPE (Phi-3) switches to its long factors, or None. Keys
    cached before it were rotated with the short factors, so the sequence is recomputed there, as
    Phi-3's reference implementation does."""
    scaling = cfg.rope_scaling or {}
    return scaling["original_max_position_embeddings"] if scaling.get("rope_type") == "longrope" else None


def _generate_seq2seq(model, prompts, max_new_tokens, sampling, stop_ids, pad_id) -> list[list[int]]:
    device = model_device(model)
    generator = None if sampling.seed is None else torch.Generator(device).manual_seed(sampling.seed)
    width = max(len(p) for p in prompts)
    src = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        src[row, : len(prompt)] = torch.tensor(prompt, device=device)
    src_valid = torch.arange(width, device=device)[None, :] < torch.tensor([len(p) for p in prompts], device=device)[:, None]
    memory = model.encode(src, src_valid)  # (B, S, C)
    start = model.cfg.pad_token_id if model.cfg.pad_token_id is not None else pad_id
    tokens = torch.full((len(prompts), 1), start, dtype=torch.long, device=device)
    cache = StaticKVCache.for_model(model, len(prompts), max_new_tokens + 1)
    stopper = _Stopper(len(prompts), stop_ids)
    pos = torch.zeros_like(tokens)
    for _ in range(max_new_tokens):
        logits = model.decode(tokens, memory, pos=pos, cache=cache, src_valid=src_valid)[:, -1]
        tokens = sample_next(logits, sampling, generator)[:, None]
        if stopper.add(tokens[:, 0]):
            break
        pos = pos + 1
    return stopper.outputs
