"""Decode attention over scattered KV blocks: the C++ kernel and the torch fallback against a
float64 computation on contiguous keys."""

import pytest
import torch

from llmkit.decode.paged_attention import decode_kernel, gather_decode_attention, paged_decode_attention


def scattered_case(window=None, heads=4, kv_heads=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    block_size, dim, lens = 4, 16, [1, 7, 13]
    n_blocks = 16
    k_cache = torch.randn(n_blocks * block_size, kv_heads, dim, generator=g)
    v_cache = torch.randn(n_blocks * block_size, kv_heads, dim, generator=g)
    order = torch.randperm(n_blocks, generator=g)  # each sequence's blocks lie anywhere
    tables = torch.zeros(3, 4, dtype=torch.long)
    used = 0
    for b, n in enumerate(lens):
        need = -(-n // block_size)
        tables[b, :need] = order[used:used + need]
        used += need
    q = torch.randn(3, heads, dim, generator=g)
    return q, k_cache, v_cache, tables, torch.tensor(lens), block_size


def reference(q, k_cache, v_cache, tables, lens, block_size, window):
    out = []
    for b, n in enumerate(lens.tolist()):
        slots = [int(tables[b, t // block_size]) * block_size + t % block_size for t in range(n)]
        k, v = k_cache[slots].double(), v_cache[slots].double()  # (n, Hkv, D)
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)  # (n, H, D)
        scores = torch.einsum("hd,thd->ht", q[b].double(), k) / q.shape[-1] ** 0.5
        if window:
            scores[:, : max(0, n - window)] = float("-inf")
        out.append(torch.einsum("ht,thd->hd", scores.softmax(-1), v))
    return torch.stack(out)


@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("path", ["fallback", "kernel"])
def test_decode_attention_over_scattered_blocks(window, path):
    q, k, v, tables, lens, bs = scattered_case()
    scale = q.shape[-1] ** -0.5
    if path == "kernel":
        if decode_kernel() is None:
            pytest.skip("no C++ toolchain: the kernel could not be built")
        out = paged_decode_attention(q, k, v, tables, lens, bs, scale, window)
    else:
        out = gather_decode_attention(q, k, v, tables, lens, bs, scale, window)
    assert torch.allclose(out.double(), reference(q, k, v, tables, lens, bs, window), atol=1e-5)


@pytest.mark.parametrize("path", ["fallback", "kernel"])
def test_bfloat16_kv_storage(path):
    q, k, v, tables, lens, bs = scattered_case()
    k16, v16 = k.bfloat16(), v.bfloat16()
    scale = q.shape[-1] ** -0.5
    if path == "kernel" and decode_kernel() is None:
        pytest.skip("no C++ toolchain: the kernel could not be built")
    run = paged_decode_attention if path == "kernel" else gather_decode_attention
    out = run(q, k16, v16, tables, lens, bs, scale, None)
    expected = reference(q, k16.float(), v16.float(), tables, lens, bs, None)  # exact on the rounded cache
    assert out.dtype == torch.float32 and torch.allclose(out.double(), expected, atol=1e-5)
