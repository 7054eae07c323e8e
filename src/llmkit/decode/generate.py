"""Generation for a batch of prompts, through the Engine (continuous batching over the paged KV
cache), with one SamplingParams for every prompt: what evaluation, fine-tuning, compression and
`LLM.generate` call. The Engine gets a KV pool sized to this batch, so nothing larger than the
batch needs is allocated.

Encoder-decoder models decode here with a static cache: their decoder also attends to the
encoder's output, which the paged engine does not hold.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.kv_cache import StaticKVCache
from llmkit.decode.placement import model_device
from llmkit.decode.sampler import RowState, sample
from llmkit.decode.sampling_params import SamplingParams
from llmkit.errors import LlmkitError

BLOCK_SIZE = 16


def _check_prompts(prompts: list[list[int]]) -> None:
    if not prompts or any(len(p) == 0 for p in prompts):
        raise LlmkitError("every prompt must have at least one token")


def generate_ids(model, prompts: list[list[int]], max_new_tokens: int, params: SamplingParams | None = None,
                 stop_ids=frozenset(), tokenizer=None, max_batch: int = 64) -> list[list[int]]:
    """New token ids for each prompt, stop tokens excluded; with params.n > 1, n completions per
    prompt in prompt order. stop_ids: tokens that end a completion (none by default);
    params.stop (strings) needs the tokenizer. At most `max_batch` completions run at once (the KV
    pool holds that many). A completion that fails raises LlmkitError."""
    _check_prompts(prompts)
    params = replace(params or SamplingParams(), max_tokens=max(1, max_new_tokens))
    if params.stop and tokenizer is None:
        raise LlmkitError("stop strings need the tokenizer: pass tokenizer=...")
    if model.cfg.arch == "encoder_decoder":
        return _generate_seq2seq(model, [p for p in prompts for _ in range(params.n)], params, set(stop_ids))
    virtual = len(model.input_prefix_ids)  # a soft prompt's tokens, which the Engine puts before every prompt
    longest = virtual + max(len(p) for p in prompts)
    if model.cfg.position == "learned":  # positions past the table do not exist: the budget shrinks
        if longest >= model.cfg.max_seq_len:
            raise LlmkitError(f"prompt of {longest} tokens does not fit the context of {model.cfg.max_seq_len}")
        max_model_len = model.cfg.max_seq_len
    else:
        max_model_len = max(model.cfg.max_seq_len, longest + params.max_tokens)
    per_request = sorted((math.ceil(min(virtual + len(p) + params.max_tokens, max_model_len) / BLOCK_SIZE)
                          for p in prompts for _ in range(params.n)), reverse=True)
    slots = min(len(per_request), max(1, max_batch))
    config = EngineConfig(block_size=BLOCK_SIZE, num_blocks=sum(per_request[:slots]) + 1, max_num_seqs=slots,
                          max_tokens_per_step=max(4096, longest), max_model_len=max_model_len)
    engine = Engine(model, tokenizer if params.stop else None, config, stop_ids=set(stop_ids))
    # Seeded: every prompt gets its own seed, mixed from (seed, prompt index) so that calls with nearby
    # seeds (a rollout counter) share no random streams; its n completions use that seed + 0..n-1.
    per_prompt = params if params.seed is None else [replace(params, seed=mixed_seed(params.seed, i))
                                                      for i in range(len(prompts))]
    outputs = []
    for completions in engine.generate(prompts, per_prompt):
        for completion in completions:
            if completion.finish_reason == "error":
                raise LlmkitError(f"generation failed: {completion.error}")
            outputs.append(completion.token_ids)
    return outputs


def mixed_seed(seed: int, index: int) -> int:
    """A well-spread 62-bit seed from (seed, index) (splitmix64's finaliser), leaving room for + n."""
    x = (seed * 0x9E3779B97F4A7C15 + index + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 2


@torch.inference_mode()
def _generate_seq2seq(model, prompts: list[list[int]], params: SamplingParams, stop_ids: set[int]) -> list[list[int]]:
    """Encode each prompt once, then decode every row from the start token, one token per step."""
    device = model_device(model)
    width = max(len(p) for p in prompts)
    src = torch.full((len(prompts), width), 0, dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        src[row, : len(prompt)] = torch.tensor(prompt, device=device)
    src_valid = torch.arange(width, device=device)[None, :] < torch.tensor([len(p) for p in prompts], device=device)[:, None]
    memory = model.encode(src, src_valid)  # (B, S, C)
    start = model.cfg.pad_token_id if model.cfg.pad_token_id is not None else 0
    tokens = torch.full((len(prompts), 1), start, dtype=torch.long, device=device)
    cache = StaticKVCache.for_model(model, len(prompts), params.max_tokens + 1)
    rows = [RowState(params, _generator(params, i), prompt, []) for i, prompt in enumerate(prompts)]
    done = [False] * len(prompts)
    pos = torch.zeros_like(tokens)
    for _ in range(params.max_tokens):
        logits = model.decode(tokens, memory, pos=pos, cache=cache, src_valid=src_valid)[:, -1]  # (B, V)
        chosen = sample(logits, rows)
        for i, (row, choice) in enumerate(zip(rows, chosen, strict=True)):
            if choice.error is not None:
                raise LlmkitError(f"generation failed: {choice.error}")
            done[i] = done[i] or choice.token in stop_ids
            if not done[i]:
                row.output_ids.append(choice.token)
        if all(done):
            break
        tokens = torch.tensor([[max(c.token, 0)] for c in chosen], device=device)  # (B, 1)
        pos = pos + 1
    return [row.output_ids for row in rows]


def _generator(params: SamplingParams, row: int) -> torch.Generator | None:
    return None if params.seed is None else torch.Generator().manual_seed(params.seed + row)
