"""KV-cache memory as fixed-size blocks (PagedAttention, arXiv 2309.06180), with prefix caching.

Pure bookkeeping, no tensors: block ids index the engine's KV tensors. A request owns a block
table (its list of block ids); block i holds the keys/values of its tokens
[i * block_size, (i + 1) * block_size).

Prefix caching (vLLM's automatic prefix caching): when a block is full, it is registered under a
hash of its tokens chained with the hash of the block before it, so equal hashes mean equal
whole prefixes. A new request looks its full prompt blocks up and reuses the hits (reference
counted) instead of recomputing them. Freed blocks keep their contents and hash in an LRU free
queue and are only overwritten when the pool needs them, oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


def block_hashes(token_ids: Sequence[int], block_size: int, parent: int | None = None) -> list[int]:
    """Chained hashes of the full blocks of token_ids (a trailing partial block has none)."""
    hashes = []
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = hash((parent, tuple(token_ids[start:start + block_size])))
        hashes.append(parent)
    return hashes


@dataclass
class PrefixCacheStats:
    queried_tokens: int = 0
    hit_tokens: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0


class BlockPool:
    def __init__(self, num_blocks: int, prefix_caching: bool = True):
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {num_blocks}")
        self.num_blocks, self.prefix_caching = num_blocks, prefix_caching
        self.ref_count = [0] * num_blocks
        self.hash_of: list[int | None] = [None] * num_blocks
        self.cached: dict[int, int] = {}  # block hash -> block id holding that prefix block
        self.free_queue: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))  # LRU first

    @property
    def num_free(self) -> int:
        """Blocks that can be handed out now (free, including cached ones not in use)."""
        return len(self.free_queue)

    def allocate(self, n: int) -> list[int]:
        """n blocks for exclusive use; evicts the least recently freed cached blocks first."""
        if n > self.num_free:
            raise RuntimeError(f"asked for {n} KV blocks with {self.num_free} free")
        blocks = []
        for _ in range(n):
            block, _ = self.free_queue.popitem(last=False)
            self._forget(block)
            self.ref_count[block] = 1
            blocks.append(block)
        return blocks

    def free(self, blocks: Sequence[int]) -> None:
        """Drop one reference to each block; unreferenced blocks join the free queue, tail first so
        that a request's last blocks (the least shareable) are evicted before its first ones."""
        for block in reversed(blocks):
            self.ref_count[block] -= 1
            assert self.ref_count[block] >= 0, f"block {block} freed twice"
            if self.ref_count[block] == 0:
                self.free_queue[block] = None

    def lookup(self, hashes: Sequence[int]) -> list[int]:
        """Blocks holding the longest cached prefix with these hashes, each now referenced once more."""
        if not self.prefix_caching:
            return []
        hits = []
        for h in hashes:
            block = self.cached.get(h)
            if block is None:
                break
            hits.append(block)
        for block in hits:
            if self.ref_count[block] == 0:
                del self.free_queue[block]
            self.ref_count[block] += 1
        return hits

    def register(self, block: int, block_hash: int) -> None:
        """Mark a full block as holding the prefix `block_hash` (first writer wins)."""
        if self.prefix_caching and self.hash_of[block] is None and block_hash not in self.cached:
            self.hash_of[block] = block_hash
            self.cached[block_hash] = block

    def _forget(self, block: int) -> None:
        h = self.hash_of[block]
        if h is not None:
            del self.cached[h]
            self.hash_of[block] = None
