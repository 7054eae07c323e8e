"""Decode attention over paged KV blocks: a small C++ kernel, built on first use, with a torch
fallback that gathers the blocks and calls SDPA.

Why a kernel: in pure torch a sequence's keys must be gathered from its blocks into a contiguous
copy before SDPA, which reads the KV cache three times (read, write, read again); at batch 64 the
gather measured half of all engine time. The kernel (kernels/paged_attention.cpp) reads each key
once through the block table. It is compiled with torch's cpp_extension (gcc + ninja, ~20 s once,
cached per CPU model since it uses -march=native). Set LLMKIT_NO_KERNELS=1 to use the fallback.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from llmkit.host.native import build_extension

SOURCE = Path(__file__).with_name("kernels") / "paged_attention.cpp"


def decode_kernel():
    """The compiled extension, or None (disabled, or no compiler: the fallback is used)."""
    return build_extension("llmkit_paged_attention", str(SOURCE))


def gather_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size: int, scale: float,
                            window: int | None) -> torch.Tensor:
    """Reference/fallback: q (B, H, D); caches (slots, Hkv, D); returns (B, H, D)."""
    width = int(context_lens.max())
    t = torch.arange(width, device=q.device)
    slots = block_tables.gather(1, (t // block_size).expand(len(q), -1).clamp(max=block_tables.shape[1] - 1))
    slots = slots * block_size + t % block_size  # (B, Tk)
    lens = context_lens[:, None]
    allowed = t[None] < lens
    if window:
        allowed &= t[None] >= lens - window
    k = k_cache[slots].transpose(1, 2).to(q.dtype)  # (B, Hkv, Tk, D)
    v = v_cache[slots].transpose(1, 2).to(q.dtype)
    y = F.scaled_dot_product_attention(q[:, :, None], k, v, attn_mask=allowed[:, None, None], scale=scale,
                                       enable_gqa=k.shape[1] != q.shape[1])
    return y[:, :, 0]


def paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size: int, scale: float,
                           window: int | None = None) -> torch.Tensor:
    supported = q.device.type == "cpu" and q.dtype == torch.float32 and k_cache.dtype in (torch.float32, torch.bfloat16)
    kernel = decode_kernel() if supported else None
    if kernel is None:
        return gather_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, scale, window)
    return kernel.paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, block_size, scale,
                                         window or 0)
