"""The serving engine: continuous batching over a paged KV cache.

    engine = Engine(model, tokenizer)
    rid = engine.add_request("Once upon a time", SamplingParams(max_tokens=32))
    while engine.has_work():
        for out in engine.step(): ...          # new tokens of every request that advanced
    engine.generate(["a", "b"], SamplingParams(max_tokens=8))   # blocking, in prompt order

Each `step()` asks the scheduler which requests run with how many tokens, performs the swaps it
decided, runs the model once per group, samples, checks stop conditions, and reports. `n > 1`
adds n sibling requests; after the first, their prompts are prefix-cache hits. With
`prompt_logprobs` a request also scores its prompt's own tokens (from `prompt_logprobs_from`);
with `max_tokens=0` it only does that: its last prompt token, only ever a target, is not computed.

A failure is contained to its request: when a batched forward pass raises, each request of the
step is re-run alone, and the ones that still fail (or whose row cannot be sampled) finish with
finish_reason "error" and a message while every other request carries on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import torch

from llmkit.decode.grammar import Grammar, GrammarCompiler
from llmkit.decode.model_runner import ModelRunner, StepOutput
from llmkit.decode.paged_cache import PagedKVCache
from llmkit.decode.placement import model_dtype
from llmkit.decode.sampler import RowState, sample
from llmkit.decode.sampling_params import SamplingParams
from llmkit.decode.scheduler import PromptScoring, Request, Scheduler, SchedulerConfig
from llmkit.decode.stops import StopConditions, checkpoint_stop_ids
from llmkit.errors import LlmkitError


@dataclass
class EngineConfig:
    block_size: int = 16
    kv_cache_mib: float = 512.0  # KV pool size; ignored when num_blocks is set
    num_blocks: int | None = None
    max_num_seqs: int = 64
    max_tokens_per_step: int = 512
    chunked_prefill: bool = True
    prefix_caching: bool = True
    preemption: str = "recompute"  # or "swap"
    max_model_len: int | None = None  # default: the model's max_seq_len
    kv_cache_dtype: str = "auto"  # "auto" (the model's), "bfloat16" or "float16": KV storage
    min_prefix_hit: int = 0  # prefix-cache hits shorter than this many tokens are computed again


@dataclass
class Completion:
    """One sequence's progress: the whole output so far and what this step added."""

    request_id: str
    index: int  # which of the prompt's n completions
    token_ids: list[int]
    new_token_ids: list[int]
    text: str = ""
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "abort" | "error"
    logprobs: list[dict] = field(default_factory=list)
    prompt_tokens: int = 0
    error: str | None = None  # with finish_reason "error": what went wrong for this request
    # with prompt_logprobs: one entry per prompt token ({"token", "logprob", "rank", "top"}, None for
    # those not scored: the first, and any before prompt_logprobs_from); on the first report after
    # the prompt and on the final one
    prompt_logprobs: list[dict | None] | None = None
    cached_tokens: int = 0  # prompt tokens whose keys and values came from the prefix cache


class RequestFailed(Exception):
    """One request could not be completed (its Completion had finish_reason "error")."""


@dataclass
class _Tracked:
    request: Request
    params: SamplingParams
    generator: torch.Generator | None
    parent: str
    index: int
    stops: StopConditions
    text: str = ""
    logprobs: list[dict] = field(default_factory=list)
    prompt_scores: dict[int, dict] = field(default_factory=dict)  # position in the prompt -> score
    prompt_reported: bool = False
    matcher: object | None = None  # the grammar's state, when the reply is constrained


class Engine:
    def __init__(self, model, tokenizer=None, config: EngineConfig | None = None, stop_ids=None,
                 select_adapters=None):
        """stop_ids: token ids that end a request; by default the checkpoint's eos and its chat
        template's end-of-turn token (llmkit.decode.stops). select_adapters: called with each
        forward pass's per-row adapter slots (a multi-LoRA model's selector; see
        llmkit.finetune.peft.multi_lora)."""
        if model.cfg.arch == "encoder_decoder":
            raise LlmkitError("the paged engine serves decoder-only models; use llmkit.decode.generate_ids "
                              "for encoder-decoder models")
        self.cfg = config or EngineConfig()
        self.rope_switch = rope_switch_position(model.cfg)
        if self.rope_switch is not None:  # LongRoPE: keys rotated with one set of factors must not be reused
            self.cfg = replace(self.cfg, prefix_caching=False, chunked_prefill=False)
        if model.cfg.arch == "prefix_decoder":  # a prompt's keys depend on all of it: one pass, never shared
            self.cfg = replace(self.cfg, prefix_caching=False, chunked_prefill=False)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.stop_ids = set(stop_ids) if stop_ids is not None else checkpoint_stop_ids(model.cfg, tokenizer)
        self.max_model_len = self.cfg.max_model_len or model.cfg.max_seq_len
        dtype = model_dtype(model) if self.cfg.kv_cache_dtype == "auto" else _dtype(self.cfg.kv_cache_dtype)
        num_blocks = self.cfg.num_blocks or max(1, int(self.cfg.kv_cache_mib * 2**20 / (
            PagedKVCache.bytes_per_token(model.cfg, dtype) * self.cfg.block_size)))
        self.scheduler = Scheduler(SchedulerConfig(
            num_blocks, self.cfg.block_size, self.cfg.max_num_seqs, self.cfg.max_tokens_per_step,
            self.cfg.chunked_prefill, self.cfg.prefix_caching, self.cfg.preemption, self.cfg.min_prefix_hit))
        self.cache = PagedKVCache.for_model(model, num_blocks, self.cfg.block_size, dtype)
        self.runner = ModelRunner(model, self.cache, select_adapters)
        self.tracked: dict[str, _Tracked] = {}
        self._grammars: GrammarCompiler | None = None  # built on the first constrained request
        self.swapped: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._ids = itertools.count()
        self.stats = {"steps": 0, "preemptions": 0, "swapped_out": 0, "generated_tokens": 0, "failed_requests": 0}

    # -- requests ---------------------------------------------------------------------------
    def add_request(self, prompt: str | list[int], params: SamplingParams | None = None,
                    request_id: str | None = None, prompt_logprobs_from: int = 1, adapter_slot: int = 0,
                    cache_salt: int | None = None) -> str:
        """Queue a prompt (text, or token ids); returns its id. With params.n > 1 the completions
        are sub-requests `id`, `id#1`, ... reported under the same parent id. With
        params.prompt_logprobs, the prompt's tokens from index `prompt_logprobs_from` are scored
        (for each of the n completions, which then compute the prompt themselves). adapter_slot:
        the loaded LoRA adapter its rows use; cache_salt keeps its KV blocks apart from other
        adapters' (give each loaded adapter its own)."""
        params = params or SamplingParams()
        prefix = list(self.model.input_prefix_ids)  # a soft prompt's virtual tokens first
        ids = prefix + self._encode(prompt)
        parent = request_id or f"req-{next(self._ids)}"
        computed = ids[:-1] if params.max_tokens == 0 and len(ids) > 1 else ids  # the last is only a target
        if len(computed) > self.max_model_len or (params.max_tokens and len(ids) >= self.max_model_len):
            raise LlmkitError(f"prompt has {len(ids)} tokens; the context holds {self.max_model_len} "
                              f"(shorten the prompt or raise max_model_len)")
        max_tokens = min(params.max_tokens, self.max_model_len - len(ids))
        stop_ids = set(params.stop_token_ids) | (set() if params.ignore_eos else self.stop_ids)
        stops = StopConditions(frozenset(stop_ids), tuple(s for s in params.stop if s))
        for index in range(params.n):
            rid = parent if index == 0 else f"{parent}#{index}"
            seed = None if params.seed is None else params.seed + index
            generator = None if seed is None else torch.Generator().manual_seed(seed)
            request = Request(rid, list(computed), max(max_tokens, 0), adapter_slot=adapter_slot, cache_salt=cache_salt)
            if params.prompt_logprobs is not None:
                request.scoring = PromptScoring(tuple(ids), len(prefix) + max(1, prompt_logprobs_from),
                                                params.prompt_logprobs)
            matcher = self.grammar_matcher(params.grammar) if params.grammar is not None else None
            self.scheduler.add(request)
            self.tracked[rid] = _Tracked(request, params, generator, parent, index, stops, matcher=matcher)
        return parent

    def grammar_matcher(self, grammar: Grammar):
        """A matcher for a constrained reply; LlmkitError naming the problem if the grammar is invalid."""
        if self._grammars is None:
            self._grammars = GrammarCompiler(self.tokenizer, self.model.cfg.vocab_size, self.stop_ids)
        return self._grammars.matcher(grammar)

    def abort(self, request_id: str) -> None:
        """Stop a request (and its n siblings) and free its KV blocks."""
        for rid in [r for r, t in self.tracked.items() if t.parent == request_id]:
            self.scheduler.abort(rid)
            self.swapped.pop(rid, None)
            del self.tracked[rid]

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    # -- one step -----------------------------------------------------------------------------
    def step(self) -> list[Completion]:
        plan = self.scheduler.schedule()
        self.stats["steps"] += 1
        self.stats["preemptions"] += len(plan.preempted)
        self.stats["swapped_out"] += len(plan.swap_out)
        for rid, blocks in plan.swap_out.items():
            self.swapped[rid] = self.cache.copy_out(blocks)
        for rid, blocks in plan.swap_in.items():
            self.cache.copy_in(blocks, self.swapped.pop(rid))
        work = [(self.scheduler.requests[rid], n, self.scheduler.kv.table(rid)) for rid, n in plan.num_tokens.items()]
        output, errors = self._execute(work)
        for rid, scores in output.prompt_logprobs.items():
            self.tracked[rid].prompt_scores.update(scores)
        logits = output.logits
        new_tokens, finished, texts = {}, {}, {}
        for rid in [r for r in logits if self.tracked[r].request.max_tokens == 0]:
            finished[rid] = "length"  # prompt only: nothing to sample
        rids = [r for r in logits if r not in finished]
        rows = [RowState(self.tracked[r].params, self.tracked[r].generator, self.tracked[r].request.prompt_ids,
                         self.tracked[r].request.output_ids) for r in rids]
        stacked = torch.stack([logits[r] for r in rids]) if rids else None  # (B, V)
        constrained = [i for i, r in enumerate(rids) if self.tracked[r].matcher is not None]
        if constrained:  # one mask computation for every constrained row of the batch
            allowed = self._grammars.masks([self.tracked[rids[i]].matcher for i in constrained])  # (K, V)
            stacked[constrained] = stacked[constrained].masked_fill(~allowed.to(stacked.device), float("-inf"))
        sampled = sample(stacked, rows) if rids else []
        for rid, choice in zip(rids, sampled, strict=True):
            t = self.tracked[rid]
            if choice.error is not None:
                errors[rid] = choice.error
                continue
            if t.stops.ends_at(choice.token):
                finished[rid] = "stop"  # the stop token itself is not part of the output
                continue
            if t.matcher is not None and not t.matcher.consume_token(choice.token):
                errors[rid] = f"the reply left its grammar ({t.matcher.get_error()})"
                continue
            new_tokens[rid] = choice.token
            if choice.logprob is not None:
                t.logprobs.append({"token": choice.token, "logprob": choice.logprob, "top": choice.top_logprobs})
            if self.tokenizer is not None:  # decoded once: for stop strings and for the report
                texts[rid] = self.tokenizer.decode(t.request.output_ids + [choice.token])
            reason = self._finish_reason(t, texts.get(rid))
            if reason:
                finished[rid] = reason
        self.stats["generated_tokens"] += len(new_tokens)
        failed = [self._fail(rid, message) for rid, message in errors.items()]  # before update: no cache reuse
        self.scheduler.update(plan.num_tokens, new_tokens, set(finished))
        self._recompute_at_rope_switch(new_tokens)
        return failed + [self._report(rid, new_tokens.get(rid), finished.get(rid), texts.get(rid))
                         for rid in logits if rid not in errors]

    def _recompute_at_rope_switch(self, new_tokens: dict[str, int]) -> None:
        """LongRoPE switches to its long factors past the pre-training context: a request whose next
        position is the switch is prefilled again, so every key uses the long factors (as Phi-3 does)."""
        if self.rope_switch is None:
            return
        for rid in new_tokens:
            request = self.scheduler.requests.get(rid)
            if request is not None and request.num_tokens - 1 == self.rope_switch:
                self.scheduler.recompute(rid)

    def _execute(self, work) -> tuple[StepOutput, dict[str, str]]:
        """The step's outputs; if the batch fails, each request runs alone so a failure stays its own."""
        if not work:
            return StepOutput(), {}
        try:
            return self.runner.execute(work), {}
        except Exception as error:  # noqa: BLE001 - which request is at fault is found below
            if len(work) == 1:
                return StepOutput(), {work[0][0].id: f"the model failed on this request ({type(error).__name__})"}
        output, errors = StepOutput(), {}
        for item in work:
            try:
                output.update(self.runner.execute([item]))
            except Exception as error:  # noqa: BLE001 - this request alone fails
                errors[item[0].id] = f"the model failed on this request ({type(error).__name__})"
        return output, errors

    def _fail(self, rid: str, message: str) -> Completion:
        """End one request with finish_reason "error": its blocks are freed, its siblings go on."""
        t = self.tracked.pop(rid)
        self.scheduler.abort(rid)
        self.swapped.pop(rid, None)
        self.stats["failed_requests"] += 1
        return Completion(t.parent, t.index, list(t.request.output_ids), [], t.text, True, "error",
                          list(t.logprobs), self._prompt_tokens(t), error=message)

    def _finish_reason(self, t: _Tracked, text: str | None) -> str | None:
        """After a token was appended: "length" at the token budget, "stop" on a stop string."""
        if len(t.request.output_ids) + 1 >= t.request.max_tokens:
            return "length"
        if text is not None and t.stops.reached_in(text):
            return "stop"
        return None

    def _report(self, rid: str, token: int | None, reason: str | None, text: str | None) -> Completion:
        t = self.tracked[rid]
        if reason is not None:
            del self.tracked[rid]
        if text is not None:
            t.text = t.stops.cut(text)
        delta_ids = [] if token is None else [token]
        return Completion(t.parent, t.index, list(t.request.output_ids), delta_ids, t.text, reason is not None,
                          reason, list(t.logprobs), self._prompt_tokens(t), prompt_logprobs=self._prompt_logprobs(t, reason is not None),
                          cached_tokens=min(t.request.num_cached_tokens, self._prompt_tokens(t)))

    def _prompt_logprobs(self, t: _Tracked, final: bool) -> list[dict | None] | None:
        """The prompt's scores on the first report after its prompt was computed, and on the last."""
        if t.request.scoring is None or (t.prompt_reported and not final):
            return None
        t.prompt_reported = True
        skip = len(self.model.input_prefix_ids)
        return [t.prompt_scores.get(position) for position in range(skip, len(t.request.scoring.ids))]

    def _prompt_tokens(self, t: _Tracked) -> int:
        """The caller's prompt length (virtual soft-prompt tokens are not the caller's)."""
        return len(t.request.prompt_ids) - len(self.model.input_prefix_ids)

    # -- blocking API ---------------------------------------------------------------------------
    def generate(self, prompts: list[str | list[int]],
                 params: SamplingParams | list[SamplingParams] | None = None) -> list[list[Completion]]:
        """All completions of every prompt (n per prompt), in prompt order; `params` is shared by every
        prompt or given one per prompt."""
        per_prompt = params if isinstance(params, list) else [params or SamplingParams()] * len(prompts)
        parents = [self.add_request(p, q) for p, q in zip(prompts, per_prompt, strict=True)]
        final: dict[tuple[str, int], Completion] = {}
        while self.has_work():
            for out in self.step():
                if out.finished:
                    final[(out.request_id, out.index)] = out
        return [[final[(pid, i)] for i in range(q.n)] for pid, q in zip(parents, per_prompt, strict=True)]

    @property
    def capacity(self) -> int:
        """The most tokens (prompt + output) one request can hold: the context or the whole KV pool."""
        return min(self.max_model_len, self.scheduler.kv.pool.num_blocks * self.cfg.block_size)

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.scheduler.kv.stats.hit_rate

    def _encode(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise LlmkitError("a text prompt needs a tokenizer; pass token ids or Engine(model, tokenizer)")
            prompt = self.tokenizer.encode(prompt)
        if not prompt:
            raise LlmkitError("the prompt is empty: give at least one token")
        return list(prompt)


def rope_switch_position(cfg) -> int | None:
    """The first position at which LongRoPE (Phi-3) switches to its long factors, or None. Keys
    cached before it were rotated with the short factors, so the sequence is recomputed there, as
    Phi-3's reference implementation does."""
    scaling = cfg.rope_scaling or {}
    return scaling["original_max_position_embeddings"] if scaling.get("rope_type") == "longrope" else None


def _dtype(name: str) -> torch.dtype:
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in dtypes:
        raise LlmkitError(f"kv_cache_dtype must be auto, {', '.join(dtypes)}; got {name!r}")
    return dtypes[name]

