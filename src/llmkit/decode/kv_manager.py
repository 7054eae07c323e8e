"""Per-request block tables over a BlockPool: how many blocks a request needs, prefix-cache hits
for a new request, growth as it computes tokens, freeing. No tensors (vLLM v1's KVCacheManager)."""

from __future__ import annotations

from collections.abc import Sequence

from llmkit.decode.block_pool import BlockPool, PrefixCacheStats, block_hashes


MIN_SHARED_TOKENS = 32  # a new request waits a step for a running one's prompt blocks only if this many


def blocks_for(n_tokens: int, block_size: int) -> int:
    return -(-n_tokens // block_size)


class KVCacheManager:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True, min_hit_tokens: int = 0):
        """min_hit_tokens: a cached prefix shorter than this is computed again instead, unless it is
        all the request may take (with small blocks, a few cached tokens cost more to gather than a
        fresh causal prefill of them)."""
        self.block_size, self.min_hit_tokens = block_size, min_hit_tokens
        self.pool = BlockPool(num_blocks, prefix_caching)
        self.tables: dict[str, list[int]] = {}
        self.hashes: dict[str, list[int]] = {}  # hashes of each request's registered full blocks
        self.pending: dict[int, str] = {}  # hash of a full prompt block a running request computes -> its id
        self.salts: dict[str, int | None] = {}  # request id -> the salt its block hashes start from
        self.stats = PrefixCacheStats()

    @property
    def usage(self) -> float:
        """Fraction of blocks in use by requests."""
        return 1 - self.pool.num_free / self.pool.num_blocks

    def table(self, request_id: str) -> list[int]:
        return self.tables.get(request_id, [])

    def cached_prefix(self, request_id: str, token_ids: Sequence[int], cacheable: int | None = None,
                      salt: int | None = None) -> int:
        """For a request starting from scratch: take the cached blocks of its longest cached prefix
        (within its first `cacheable` tokens, when given) into its table and return how many tokens
        they hold. At least one token is left to compute, because the step must produce logits for
        the last prompt token. The blocks it will compute are marked pending until registered.
        `salt` starts the hash chain: requests whose keys differ for equal tokens (different LoRA
        adapters) never share blocks."""
        self.salts[request_id] = salt
        hashes = block_hashes(token_ids[: len(token_ids) - 1], self.block_size, salt)
        usable = hashes if cacheable is None else hashes[: cacheable // self.block_size]
        hits = self.pool.lookup(usable)
        if hits and len(hits) * self.block_size < self.min_hit_tokens and len(hits) < len(usable):
            self.pool.free(hits)
            hits = []
        self.tables[request_id] = list(hits)
        self.hashes[request_id] = hashes[: len(hits)]
        if self.pool.prefix_caching:
            for h in hashes[len(hits):]:
                self.pending.setdefault(h, request_id)
        self.stats.queried_tokens += len(token_ids)
        self.stats.hit_tokens += len(hits) * self.block_size
        return len(hits) * self.block_size

    def awaits_pending(self, request_id: str, token_ids: Sequence[int], cacheable: int | None = None,
                       salt: int | None = None) -> bool:
        """Whether the prompt's next uncached blocks are being computed by a running request - at
        least MIN_SHARED_TOKENS of them, or all the rest it may take from the cache: admitted a step
        later, this request reuses them instead of computing them again (the choices of a
        multiple-choice question, n samples of one prompt sent apart)."""
        if not self.pool.prefix_caching or not self.pending:
            return False
        hashes = block_hashes(token_ids[: len(token_ids) - 1], self.block_size, salt)
        usable = hashes if cacheable is None else hashes[: cacheable // self.block_size]
        shared = 0
        for h in usable:
            if h in self.pool.cached and not shared:
                continue
            if self.pending.get(h, request_id) == request_id:
                return False
            shared += self.block_size
            if shared >= MIN_SHARED_TOKENS:
                return True
        return shared > 0  # every block it may reuse is on its way

    def allocate(self, request_id: str, n_total_tokens: int) -> bool:
        """Grow the request's table to hold n_total_tokens; False (and no change) if the pool is short."""
        table = self.tables.setdefault(request_id, [])
        missing = blocks_for(n_total_tokens, self.block_size) - len(table)
        if missing > self.pool.num_free:
            return False
        if missing > 0:
            table.extend(self.pool.allocate(missing))
        return True

    def register_full_blocks(self, request_id: str, token_ids: Sequence[int], n_computed: int) -> None:
        """Make the request's full, computed blocks findable by later requests with the same prefix."""
        done = self.hashes.setdefault(request_id, [])
        n_full = n_computed // self.block_size
        if n_full <= len(done):
            return
        parent = done[-1] if done else self.salts.get(request_id)
        start = len(done) * self.block_size
        new = block_hashes(token_ids[start: n_full * self.block_size], self.block_size, parent)
        table = self.tables[request_id]
        for i, h in enumerate(new, start=len(done)):
            self.pool.register(table[i], h)
            if self.pending.get(h) == request_id:
                del self.pending[h]
        done.extend(new)

    def free(self, request_id: str) -> None:
        self.pool.free(self.tables.pop(request_id, []))
        self.hashes.pop(request_id, None)
        self.salts.pop(request_id, None)
        if any(owner == request_id for owner in self.pending.values()):
            self.pending = {h: owner for h, owner in self.pending.items() if owner != request_id}
