"""Static KV cache for single-stream and batched decoding (gpt-fast style): tensors of fixed
size allocated once, written at slot = position + offset.

Batched prompts are left-padded, so row b's logical position p lives in slot p + offsets[b];
every row then writes the same slots at each step and one index_copy serves the whole batch.
Contract with the model: `key_positions(pos)` is called once per forward, before `update`.
"""

from __future__ import annotations

import torch

from llmkit.decode.placement import kv_heads, model_device, model_dtype


class StaticKVCache:
    computes_attention = False  # the model's attention calls `update` (llmkit.model.attention.KVCache)
    keys_are_queries = False  # a pass attends the cached keys too

    def __init__(self, n_layer: int, batch: int, n_kv_head: int, head_dim: int, max_len: int,
                 device=None, dtype=torch.float32, offsets: torch.Tensor | None = None):
        shape = (n_layer, batch, n_kv_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.offsets = torch.zeros(batch, dtype=torch.long, device=device) if offsets is None else offsets.to(device)
        self.max_len = max_len
        self._slots = self._end = None

    @classmethod
    def for_model(cls, model, batch: int, max_len: int, offsets: torch.Tensor | None = None) -> StaticKVCache:
        cfg = model.cfg
        return cls(cfg.n_layer, batch, kv_heads(model), cfg.head_dim, max_len, model_device(model), model_dtype(model),
                   offsets)

    def key_positions(self, pos: torch.Tensor) -> torch.Tensor:
        """Logical positions (B, Tk) of every cached key up to and including this step's tokens."""
        self._slots = pos[0] + self.offsets[0]  # (T,) shared by all rows
        self._end = int(self._slots[-1]) + 1
        if self._end > self.max_len:
            raise ValueError(f"KV cache full: slot {self._end - 1} >= max_len {self.max_len}")
        return torch.arange(self._end, device=pos.device)[None, :] - self.offsets[:, None]

    def update(self, layer_idx: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, Hkv, T, D) at this step's slots; return all keys/values so far."""
        self.k[layer_idx].index_copy_(2, self._slots, k)
        self.v[layer_idx].index_copy_(2, self._slots, v)
        return self.k[layer_idx, :, :, : self._end], self.v[layer_idx, :, :, : self._end]
