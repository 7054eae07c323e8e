"""Log-likelihoods from one forward pass per batch, the two requests lm-evaluation-harness scores with:

- continuation: sum log p(continuation | context) and whether greedy decoding would produce the
  continuation (its `is_greedy`); multiple-choice tasks compare these across choices.
- rolling: log p(text) token by token with a sliding window of at most the model's context: each
  window scores only the tokens the previous window did not, and `stride` is how far it moves, so
  every token but the first window's sees max_len - stride tokens of context or more (stride =
  max_len: disjoint windows, the cheapest; smaller strides: more context per token, more compute).

Both are prompt log-probabilities of the one decode path (`llmkit.decode.Engine`, requests with
max_tokens=0 and prompt_logprobs), longest first, `batch_size` requests at a time; results come
back in request order. Its prefix cache, at a block size of one token, computes a context shared
by several requests (a multiple-choice question's choices) once: the others wait a step for it,
then compute only their own tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.kv_manager import MIN_SHARED_TOKENS
from llmkit.decode.paged_cache import PagedKVCache
from llmkit.decode.placement import model_dtype
from llmkit.decode.sampling_params import SamplingParams
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


SCORING_KV_BYTES = 2**30  # the KV pool of a scoring engine holds at most this (and at least one row)


def scoring_engine(model, longest: int, max_len: int, batch_size: int) -> Engine:
    """An Engine with one-token blocks whose steps compute about `batch_size` rows of the longest
    length, its KV pool sized for a quarter more (rows that wait on a shared context run beside it).
    Rows are not split across steps and short cache hits are not taken: a step of rows that all
    start at position 0 attends with the fused causal kernel."""
    prefix = len(model.input_prefix_ids)
    per_row = longest + prefix
    fits = SCORING_KV_BYTES // (PagedKVCache.bytes_per_token(model.cfg, model_dtype(model)) * per_row)
    rows = max(1, min(batch_size + -(-batch_size // 4), fits))
    config = EngineConfig(block_size=1, num_blocks=rows * per_row + 1, max_num_seqs=16 * batch_size,
                          max_tokens_per_step=max(1, min(rows, batch_size)) * per_row, max_model_len=max_len + prefix,
                          min_prefix_hit=MIN_SHARED_TOKENS, chunked_prefill=False)
    return Engine(model, config=config, stop_ids=())


def _score_rows(model, rows: list[list[int]], targets_from: list[int], max_len: int, batch_size: int,
                progress: Progress | None) -> list[tuple[float, bool]]:
    """For token rows: (sum of log p over positions >= targets_from, all of them the model's argmax).
    Rows go to the engine longest first, equal inputs next to each other."""
    engine = scoring_engine(model, max(map(len, rows)), max_len, batch_size)
    params = SamplingParams(max_tokens=0, prompt_logprobs=0)
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), rows[i][:-1]))
    owner = {engine.add_request(rows[i], params, prompt_logprobs_from=targets_from[i]): i for i in order}
    results: list[tuple[float, bool] | None] = [None] * len(rows)
    while engine.has_work():
        for out in engine.step():
            if not out.finished:
                continue
            if out.finish_reason == "error":
                raise LlmkitError(f"scoring failed: {out.error}")
            scored = out.prompt_logprobs[targets_from[owner[out.request_id]]:]
            results[owner[out.request_id]] = (sum(s["logprob"] for s in scored), all(s["rank"] == 1 for s in scored))
            if progress:
                progress(1)
    return results


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
    return _score_rows(model, rows, starts, limit - 1, batch_size, progress)


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
    totals = [[0.0, 0] for _ in texts_ids]
    scored = _score_rows(model, [w for w, _ in windows], [start for _, start in windows], limit, batch_size, progress)
    for (window, start), index, (logprob, _) in zip(windows, owner, scored, strict=True):
        totals[index][0] += logprob
        totals[index][1] += len(window) - start
    return [(total, count) for total, count in totals]
