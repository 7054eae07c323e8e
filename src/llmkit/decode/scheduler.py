"""Which requests run in the next step, and with how many tokens (vLLM v1's scheduler).

CPU-only and model-free, so it is unit-tested on its own. There is no prefill/decode phase: each
request has `num_computed_tokens` of its `num_tokens` (prompt + output so far), and a step gives
it up to the difference, under a per-step token budget (chunked prefill: a long prompt is split
across steps while other requests keep decoding). Order is first come, first served:

1. Running requests, oldest first, get their tokens. When the KV pool has no block left, the
   newest running request is preempted (recompute: its blocks are freed and it restarts later,
   reusing whatever prefix blocks survive; or swap: its blocks are copied out to host memory
   and copied back when it resumes).
2. If nothing was preempted, waiting requests are admitted, oldest (and preempted) first, while
   the budget, the sequence limit and the pool allow; a new request starts after its
   prefix-cache hits. A request whose next uncached prompt block is being computed by a running
   request waits a step and then reuses it (requests sharing a prefix, sent together).
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field

from llmkit.decode.kv_manager import KVCacheManager


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    SWAPPED = "swapped"
    FINISHED = "finished"


_arrivals = itertools.count()


@dataclass(frozen=True)
class PromptScoring:
    """Log-probabilities of the prompt's own tokens ids[first:] (vLLM's prompt_logprobs): position p
    predicts ids[p + 1]. `ids` is the whole prompt; a request that generates nothing does not
    compute its last token, which is only ever a target. top: alternatives reported per position."""

    ids: tuple[int, ...]
    first: int
    top: int = 0


@dataclass(eq=False)  # a request is itself: membership tests compare identity, not every field
class Request:
    id: str
    prompt_ids: list[int]
    max_tokens: int
    output_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    status: Status = Status.WAITING
    arrival: int = field(default_factory=lambda: next(_arrivals))
    num_preemptions: int = 0
    scoring: PromptScoring | None = None  # prompt log-probabilities wanted (they cap prefix-cache reuse)
    num_cached_tokens: int = 0  # prompt tokens the prefix cache supplied at first admission
    adapter_slot: int = 0  # which loaded LoRA adapter its rows use (0: none), for the model's selector
    cache_salt: int | None = None  # keys differ from other requests' for equal tokens (an adapter): no sharing

    @property
    def cacheable(self) -> int | None:
        """How many leading tokens may come from the prefix cache: not the positions that score."""
        return None if self.scoring is None else self.scoring.first - 1

    @property
    def token_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)


@dataclass
class SchedulerConfig:
    num_blocks: int
    block_size: int = 16
    max_num_seqs: int = 64  # requests running at once
    max_tokens_per_step: int = 512  # token budget of one step (prefill chunks + decodes)
    chunked_prefill: bool = True  # False: a prompt must fit the budget of one step whole
    prefix_caching: bool = True
    preemption: str = "recompute"  # or "swap"
    min_prefix_hit: int = 0  # tokens: shorter prefix-cache hits are recomputed

    def __post_init__(self):
        if self.preemption not in ("recompute", "swap"):
            raise ValueError(f"preemption must be 'recompute' or 'swap', got {self.preemption!r}")


@dataclass
class SchedulerOutput:
    num_tokens: dict[str, int] = field(default_factory=dict)  # request id -> tokens this step, in order
    preempted: list[str] = field(default_factory=list)
    swap_out: dict[str, list[int]] = field(default_factory=dict)  # copy these blocks out, before the step
    swap_in: dict[str, list[int]] = field(default_factory=dict)  # copy saved KV into these blocks

    @property
    def total_tokens(self) -> int:
        return sum(self.num_tokens.values())


class Scheduler:
    def __init__(self, cfg: SchedulerConfig):
        self.cfg = cfg
        self.kv = KVCacheManager(cfg.num_blocks, cfg.block_size, cfg.prefix_caching, cfg.min_prefix_hit)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}

    def add(self, request: Request) -> None:
        if request.id in self.requests:
            raise ValueError(f"request id {request.id!r} is already in use")
        if self.kv.pool.num_blocks * self.cfg.block_size < request.num_tokens + request.max_tokens:
            raise ValueError(f"request {request.id!r} needs {request.num_tokens + request.max_tokens} tokens "
                             f"of KV cache; the whole cache holds {self.kv.pool.num_blocks * self.cfg.block_size}")
        self.requests[request.id] = request
        self.waiting.append(request)

    def abort(self, request_id: str) -> bool:
        """Drop a request wherever it is and free its blocks; False if it is unknown or done."""
        request = self.requests.pop(request_id, None)
        if request is None:
            return False
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        self.kv.free(request_id)
        request.status = Status.FINISHED
        return True

    def recompute(self, request_id: str) -> None:
        """Drop a running request's KV blocks and queue it first, to prefill prompt + output again."""
        request = self.requests[request_id]
        if request in self.running:
            self.running.remove(request)
        self.kv.free(request_id)
        request.num_computed_tokens, request.status = 0, Status.PREEMPTED
        self.waiting.appendleft(request)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.cfg.max_tokens_per_step
        scheduled: list[Request] = []
        for request in list(self.running):
            if request not in self.running or budget == 0:
                continue  # preempted earlier in this loop, or nothing left to give
            n = min(request.num_tokens - request.num_computed_tokens, budget)
            while not self.kv.allocate(request.id, request.num_computed_tokens + n):
                victim = self.running.pop()  # the newest running request
                self._preempt(victim, out)
                if victim is request:
                    break
            else:
                scheduled.append(request)
                out.num_tokens[request.id] = n
                budget -= n
        if not out.preempted:
            self._admit(out, budget, scheduled)
        self.running.sort(key=lambda r: r.arrival)
        return out

    def _admit(self, out: SchedulerOutput, budget: int, scheduled: list[Request]) -> None:
        for request in list(self.waiting):
            if budget <= 0 or len(self.running) >= self.cfg.max_num_seqs:
                break
            swapped = request.status == Status.SWAPPED
            if not swapped and request.num_computed_tokens == 0:
                if self.kv.awaits_pending(request.id, request.token_ids, request.cacheable, request.cache_salt):
                    continue  # its prefix is being computed this step: reuse it next step
                request.num_computed_tokens = self.kv.cached_prefix(request.id, request.token_ids, request.cacheable,
                                                                    request.cache_salt)
                if not request.num_preemptions:
                    request.num_cached_tokens = request.num_computed_tokens
            n = request.num_tokens - request.num_computed_tokens
            if n > budget and not self.cfg.chunked_prefill:
                if out.num_tokens:  # others run this step: this prompt waits for a step of its own
                    break
                budget = n  # alone in a step, an unchunked prompt may exceed the token budget

            n = min(n, budget)
            if not self.kv.allocate(request.id, request.num_computed_tokens + n):
                if not swapped:  # give the prefix hits back; they are looked up again next time
                    self.kv.free(request.id)
                    request.num_computed_tokens = 0
                break
            self.waiting.remove(request)
            if swapped:
                table = self.kv.table(request.id)
                out.swap_in[request.id] = table[: -(-request.num_computed_tokens // self.cfg.block_size)]
            request.status = Status.RUNNING
            self.running.append(request)
            scheduled.append(request)
            out.num_tokens[request.id] = n
            budget -= n

    def _preempt(self, request: Request, out: SchedulerOutput) -> None:
        out.preempted.append(request.id)
        out.num_tokens.pop(request.id, None)
        request.num_preemptions += 1
        if self.cfg.preemption == "swap" and request.num_computed_tokens > 0:
            n_blocks = -(-request.num_computed_tokens // self.cfg.block_size)
            out.swap_out[request.id] = self.kv.table(request.id)[:n_blocks]
            request.status = Status.SWAPPED
        else:
            request.num_computed_tokens = 0
            request.status = Status.PREEMPTED
        self.kv.free(request.id)
        self.waiting.appendleft(request)

    def update(self, num_computed: dict[str, int], new_tokens: dict[str, int], finished: set[str]) -> None:
        """After the step: requests advance by the tokens they ran; those that finished a prompt
        or decoded get their sampled token; finished ones leave and free their blocks."""
        for request_id, n in num_computed.items():
            request = self.requests.get(request_id)
            if request is None:
                continue  # aborted during the step
            request.num_computed_tokens += n
            self.kv.register_full_blocks(request_id, request.token_ids, request.num_computed_tokens)
            if request_id in new_tokens:
                request.output_ids.append(new_tokens[request_id])
        for request_id in finished:
            request = self.requests.pop(request_id, None)
            if request is not None:
                self.running.remove(request)
                self.kv.free(request_id)
                request.status = Status.FINISHED
