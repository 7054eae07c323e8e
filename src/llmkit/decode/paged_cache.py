"""The KV tensors behind the block pool, and the per-forward view the model writes through.

Layout: k and v are (n_layer, num_blocks * block_size, Hkv, D); token slot = block * block_size +
offset. A forward pass over a batch of sequences gets a `PagedStep` that implements the model's
cache contract (`key_positions`, `update`): new keys/values are scattered to their slots, then
each sequence's keys are gathered through its block table into (B, Hkv, Tk, D) for SDPA.
Padding keys carry position -1, which the model's mask never lets a real query attend.
(vLLM's CUDA kernels read the blocks in place; on CPU a gather into SDPA measured fastest.)
"""

from __future__ import annotations

import torch

from llmkit.decode.paged_attention import paged_decode_attention
from llmkit.decode.placement import kv_heads, model_device, model_dtype


class PagedKVCache:
    def __init__(self, n_layer: int, num_blocks: int, block_size: int, n_kv_head: int, head_dim: int,
                 device=None, dtype=torch.float32):
        shape = (n_layer, num_blocks * block_size, n_kv_head, head_dim)
        # Zeroed: masked-out keys are still read (padding, the unwritten tail of a sequence's last
        # block in the gathering fallback), and a masked weight of 0 times a NaN left in memory is NaN.
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.num_blocks, self.block_size = num_blocks, block_size

    @staticmethod
    def bytes_per_token(cfg, dtype: torch.dtype) -> int:
        return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * torch.empty(0, dtype=dtype).element_size()

    @classmethod
    def for_model(cls, model, num_blocks: int, block_size: int, dtype: torch.dtype | None = None) -> PagedKVCache:
        """dtype: storage of keys/values (default: the model's); bfloat16 halves the cache's memory and
        the bytes every decode step reads, at bf16 rounding of keys and values."""
        cfg = model.cfg
        return cls(cfg.n_layer, num_blocks, block_size, kv_heads(model), cfg.head_dim, model_device(model),
                   dtype or model_dtype(model))

    def slots(self, table: list[int], start: int, end: int) -> torch.Tensor:
        """Slots of token positions [start, end) of a sequence with this block table."""
        pos = torch.arange(start, end)
        blocks = torch.tensor(table, dtype=torch.long)[pos // self.block_size]
        return blocks * self.block_size + pos % self.block_size

    def copy_out(self, blocks: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Host copies (n_layer, n_blocks * block_size, Hkv, D) of these blocks, for swapping."""
        idx = self.slots(blocks, 0, len(blocks) * self.block_size).to(self.k.device)
        return self.k[:, idx].to("cpu", copy=True), self.v[:, idx].to("cpu", copy=True)

    def copy_in(self, blocks: list[int], saved: tuple[torch.Tensor, torch.Tensor]) -> None:
        idx = self.slots(blocks, 0, len(blocks) * self.block_size).to(self.k.device)
        self.k[:, idx] = saved[0].to(self.k.device)
        self.v[:, idx] = saved[1].to(self.v.device)


class PagedStep:
    """The cache seen by one forward pass over B sequences padded to Tq new tokens each.

    write_slots (B, Tq): where each new token's k/v goes (-1: padding);
    key_slots (B, Tk): where each attended key lives; key_pos (B, Tk): its position (-1: padding).
    """

    computes_attention = False

    def __init__(self, cache: PagedKVCache, write_slots: torch.Tensor, key_slots: torch.Tensor, key_pos: torch.Tensor,
                 fresh: bool = False):
        """fresh: every row starts at position 0, so its keys are exactly its queries (causal, no mask)."""
        self.cache, self.key_pos, self.keys_are_queries = cache, key_pos, fresh
        valid = write_slots >= 0
        self.valid = valid if not bool(valid.all()) else None  # None: no padding to drop
        self.write = write_slots[valid]  # (N,)
        self.gather = key_slots.clamp(min=0)  # (B, Tk)

    def key_positions(self, pos: torch.Tensor) -> torch.Tensor:
        return self.key_pos

    def update(self, layer_idx: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, Hkv, Tq, D) and return every attended key and value (B, Hkv, Tk, D)."""
        k_all, v_all = self.cache.k[layer_idx], self.cache.v[layer_idx]  # (S, Hkv, D)
        new_k, new_v = k.transpose(1, 2), v.transpose(1, 2)  # (B, Tq, Hkv, D)
        if self.valid is None:
            new_k, new_v = new_k.flatten(0, 1), new_v.flatten(0, 1)
        else:
            new_k, new_v = new_k[self.valid], new_v[self.valid]  # (N, Hkv, D)
        k_all.index_copy_(0, self.write, new_k.to(k_all.dtype))
        v_all.index_copy_(0, self.write, new_v.to(v_all.dtype))
        if self.keys_are_queries and k_all.dtype == k.dtype:
            return k, v  # what was just stored is all there is to attend: no gather
        return k_all[self.gather].transpose(1, 2).to(k.dtype), v_all[self.gather].transpose(1, 2).to(v.dtype)


class PagedDecodeStep:
    """The cache seen by a batch of one-token decodes: stores each new k/v in its slot, then
    attends straight from the blocks (no gather). block_tables (B, max_blocks), context_lens (B,)
    count the new token."""

    computes_attention = True
    keys_are_queries = False

    def __init__(self, cache: PagedKVCache, write_slots: torch.Tensor, block_tables: torch.Tensor,
                 context_lens: torch.Tensor, window: int | None):
        self.cache, self.write, self.tables, self.lens, self.window = cache, write_slots, block_tables, context_lens, window

    def key_positions(self, pos: torch.Tensor) -> torch.Tensor:
        return pos  # the model's mask is not used: `attend` applies causality and the window itself

    def attend(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """q (B, H, 1, D), k/v (B, Hkv, 1, D) -> (B, H, 1, D)."""
        k_all, v_all = self.cache.k[layer_idx], self.cache.v[layer_idx]  # (S, Hkv, D)
        k_all.index_copy_(0, self.write, k[:, :, 0].to(k_all.dtype))
        v_all.index_copy_(0, self.write, v[:, :, 0].to(v_all.dtype))
        y = paged_decode_attention(q[:, :, 0], k_all, v_all, self.tables, self.lens, self.cache.block_size, scale,
                                   self.window)  # (B, H, D)
        return y[:, :, None]
