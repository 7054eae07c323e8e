"""Log-likelihoods from one forward pass per batch, the two requests lm-evaluation-harness scores with:

- continuation: sum log p(continuation | context) and whether greedy decoding would produce the
  continuation (its `is_greedy`); multiple-choice tasks compare these across choices.
- rolling: log p(text) token by token with a sliding window of at most the model's context: each
  window scores only the tokens the previous window did not, and `stride` is how far it moves, so
  every token but the first window's sees max_len - stride tokens of context or more (stride =
  max_len: disjoint windows, the cheapest; smaller strides: more context per token, more compute).

Requests are sorted longest first and right-padded into batches (right padding leaves causal
attention over the real tokens unchanged); results come back in request order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from llmkit.errors import LlmkitError

Progress = Callable[[int], None]


def encode_pair(tokenizer, context: str, continuation: str, add_special_tokens: bool = True) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval makes them: context + continuation tokenized
    together (as the model saw text in training) and split at the context's length, falling back to
    separate encodings where a merge crosses the boundary."""
    whole = tokenizer.encode(context + continuation, add_special_tokens=add_special_tokens)
    ctx = tokenizer.encode(context, add_special_tokens=add_special_tokens)
    if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
        return ctx, whole[len(ctx):]
    return ctx, tokenizer.encode(continuation, add_special_tokens=False)


def _model_len(model, max_len: int | None) -> int:
    if model.cfg.arch == "encoder_decoder":
        raise LlmkitError("log-likelihood tasks (perplexity, multiple choice, canary, bias) score a decoder's "
                          "continuations; this checkpoint is an encoder-decoder: use generate tasks")
    return min(max_len or model.cfg.max_seq_len, model.cfg.max_seq_len)


@torch.no_grad()
def _score_rows(model, rows: list[list[int]], targets_from: list[int], greedy: bool = True) -> list[tuple[float, bool]]:
    """For token rows: (sum of log p over positions >= targets_from, all of them argmax; False
    without computing it when `greedy` is off, as rolling perplexity needs no argmax). Rows whose
    inputs (all but the last token) are equal share one forward pass: the choices of a
    multiple-choice question that are one token each cost one pass, as in lm-eval."""
    unique: dict[tuple[int, ...], int] = {}
    for row in rows:
        unique.setdefault(tuple(row[:-1]), len(unique))
    prefix = list(model.input_prefix_ids)  # a soft prompt's virtual tokens
    inputs = [prefix + list(row) for row in unique]
    width = max(map(len, inputs))
    tokens = torch.zeros(len(inputs), width, dtype=torch.long)  # (B, T) right-padded
    for i, row in enumerate(inputs):
        tokens[i, : len(row)] = torch.tensor(row)
    logits = model(tokens)[:, len(prefix):]  # (B, T, V): position t predicts token t+1
    out = []
    for row, start in zip(rows, targets_from, strict=True):
        # normalise only where targets are scored: a context's positions need no softmax
        scores = F.log_softmax(logits[unique[tuple(row[:-1])], start - 1: len(row) - 1].float(), dim=-1)  # (n, V)
        targets = torch.tensor(row[start:])  # (n,)
        picked = scores.gather(-1, targets[:, None])[:, 0]
        out.append((picked.sum().item(), greedy and bool((scores.argmax(-1) == targets).all())))
    return out


def continuation_loglikelihoods(model, requests: list[tuple[list[int], list[int]]], batch_size: int = 16,
                                max_len: int | None = None, progress: Progress | None = None) -> list[tuple[float, bool]]:
    """(log p(continuation | context), is_greedy) per (context ids, continuation ids). The context is
    cut from the left to fit the model; it must hold at least one token."""
    limit = _model_len(model, max_len) + 1  # the last token is only ever a target
    rows, starts = [], []
    for context, continuation in requests:
        if not context or not continuation:
            raise LlmkitError("every log-likelihood request needs a non-empty context and continuation")
        if len(continuation) >= limit:
            raise LlmkitError(f"a continuation of {len(continuation)} tokens does not fit the {limit - 1}-token context")
        row = (context + continuation)[-limit:]
        rows.append(row)
        starts.append(len(row) - len(continuation))
    # longest first; equal inputs next to each other, so that they land in one batch and share a pass
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), rows[i][:-1]))
    results: list[tuple[float, bool] | None] = [None] * len(rows)
    b = 0
    while b < len(order):
        chunk, seen = [], set()
        while b < len(order) and (len(seen) < batch_size or tuple(rows[order[b]][:-1]) in seen):
            seen.add(tuple(rows[order[b]][:-1]))
            chunk.append(order[b])
            b += 1
        for i, scored in zip(chunk, _score_rows(model, [rows[i] for i in chunk], [starts[i] for i in chunk])):
            results[i] = scored
        if progress:
            progress(len(chunk))
    return results


def rolling_windows(tokens: list[int], max_len: int, stride: int, prefix_id: int | None) -> list[tuple[list[int], int]]:
    """(window tokens, index where its scored targets start) covering every token once. With a
    prefix id (BOS) the first token is scored too; without one it only serves as context."""
    if not 0 < stride <= max_len:
        raise LlmkitError(f"stride must be in [1, {max_len}], got {stride}")
    ids = ([prefix_id] if prefix_id is not None else []) + tokens
    windows, scored_to = [], 1  # ids[0] is never a target
    while scored_to < len(ids):
        end = min(scored_to + stride, len(ids)) if windows else min(max_len + 1, len(ids))
        begin = max(0, end - max_len - 1)
        windows.append((ids[begin:end], scored_to - begin))
        scored_to = end
    return windows


def rolling_loglikelihoods(model, texts_ids: list[list[int]], prefix_id: int | None, stride: int | None = None,
                           batch_size: int = 16, max_len: int | None = None,
                           progress: Progress | None = None) -> list[tuple[float, int]]:
    """(sum log p over the text's tokens, number of tokens scored) per text."""
    limit = _model_len(model, max_len)
    windows, owner = [], []
    for index, ids in enumerate(texts_ids):
        for window in rolling_windows(ids, limit, stride or limit, prefix_id):
            windows.append(window)
            owner.append(index)
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
    totals = [[0.0, 0] for _ in texts_ids]
    for b in range(0, len(order), batch_size):
        chunk = order[b: b + batch_size]
        scored = _score_rows(model, [windows[i][0] for i in chunk], [windows[i][1] for i in chunk], greedy=False)
        for i, (logprob, _) in zip(chunk, scored):
            totals[owner[i]][0] += logprob
            totals[owner[i]][1] += len(windows[i][0]) - windows[i][1]
        if progress:
            progress(len(chunk))
    return [(total, count) for total, count in totals]
