"""Model FLOPs utilisation: achieved FLOP/s over the device's peak.

FLOPs per token follow the PaLM appendix B accounting: 6 N for the matrix multiplies of the
forward and backward pass over N non-embedding parameters (the output head counts), plus
12 L T d for attention scores and values (L layers, T tokens of context, d model width).
"""

from __future__ import annotations

import functools
import time

import torch

# Dense peak FLOP/s by device name fragment and dtype, from vendor data sheets.
KNOWN_PEAKS = {("H100", torch.bfloat16): 989e12, ("H100", torch.float32): 67e12,
               ("H200", torch.bfloat16): 989e12, ("A100", torch.bfloat16): 312e12, ("A100", torch.float32): 19.5e12}


def flops_per_token(model: torch.nn.Module, seq_len: int, parameter_count: int | None = None) -> float:
    """Training FLOPs per token position; `parameter_count`: the whole model's, where `model` is one
    pipeline rank's share of it."""
    cfg = model.cfg
    embedding = cfg.vocab_size * cfg.d_model + (cfg.max_seq_len * cfg.d_model if cfg.position == "learned" else 0)
    params = parameter_count or sum(p.numel() for p in model.parameters())
    if cfg.tie_embeddings:
        params += cfg.vocab_size * cfg.d_model  # the tied head still multiplies
    dense = params - embedding
    # a frozen weight (LoRA, adapters) costs forward + input gradient, 4 FLOPs per token, not 6
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    frozen_dense = min(max(frozen - embedding, 0), dense)
    depth = cfg.n_layer + cfg.n_encoder_layer
    return 6 * dense - 2 * frozen_dense + 12 * depth * seq_len * cfg.n_head * cfg.head_dim


@functools.lru_cache(maxsize=4)
def measured_peak(device_type: str, dtype: torch.dtype = torch.float32, size: int = 2048) -> float:
    """Best-of-5 FLOP/s of a square matmul: the practical ceiling MFU is measured against."""
    if device_type == "cuda":
        name = torch.cuda.get_device_name()
        for (fragment, kind), peak in KNOWN_PEAKS.items():
            if fragment in name and kind == dtype:
                return peak
    if device_type == "cpu":  # sized to a time budget: an emulated dtype would take a minute at 2048
        from llmkit.host.ceilings import gemm_flops

        return gemm_flops(dtype, size)
    a = torch.randn(size, size, device=device_type, dtype=dtype)
    b = torch.randn(size, size, device=device_type, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        if device_type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device_type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
