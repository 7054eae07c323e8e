"""What this machine can do at best, measured in the calling process: matrix-multiply throughput in
fp32, bf16 and int8, and memory read and copy bandwidth. Benchmarks report their results as
fractions of these, so a number stays meaningful on whatever machine runs it (a 2-core Xeon with
AMX runs bf16 and int8 matmuls about 7x faster than fp32; an AVX2-only EPYC does not).

    ceilings = measure_ceilings()          # a few seconds; a dict of floats
    matrix_units()                         # e.g. ("amx_bf16", "amx_int8", "avx512_bf16")
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

MATRIX_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni")


@functools.cache  # the CPU does not change under a running process; bf16_is_fast sits on inference paths
def matrix_units() -> tuple[str, ...]:
    """The CPU's matrix/dot-product instruction sets that make bf16 or int8 faster than fp32."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ()
    return tuple(flag for flag in MATRIX_FLAGS if flag in flags)


def bf16_is_fast() -> bool:
    """Whether bf16 matmuls run on dedicated units here (AMX or AVX-512 BF16), so bf16 training and
    inference are the fast path rather than an emulation."""
    return bool({"amx_bf16", "avx512_bf16"} & set(matrix_units()))


def best_seconds(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls of fn, after one untimed warm-up call."""
    fn()  # warm-up: allocation, kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 5, budget_s: float = 0.25) -> float:
    """FLOP/s of a square matmul in `dtype` (int8: torch._int_mm, int32 accumulation). Starts at
    256 and doubles up to `size` while one product takes under `budget_s`: where a dtype is emulated
    (bf16 on AVX2 runs at well under 1 GFLOP/s) a 2048-square product would take a minute."""
    n, flops = 256, 0.0
    while True:
        if dtype == torch.int8:
            a = torch.randint(-64, 64, (n, n), dtype=torch.int8)
            b = torch.randint(-64, 64, (n, n), dtype=torch.int8)
            seconds = best_seconds(lambda: torch._int_mm(a, b), repeats)
        else:
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            seconds = best_seconds(lambda: a @ b, repeats)
        flops = 2 * n**3 / seconds
        if n >= size or seconds * 8 > budget_s:  # the next size costs 8x
            return flops
        n *= 2


def copy_bandwidth(n_bytes: int = 2**29, repeats: int = 5) -> float:
    """Bytes per second of copying a tensor (counted once, as copy benchmarks report it)."""
    src, dst = torch.ones(n_bytes // 4), torch.empty(n_bytes // 4)
    return n_bytes / best_seconds(lambda: dst.copy_(src), repeats)


def read_bandwidth(n_bytes: int = 2**29, repeats: int = 5) -> float:
    """Bytes per second of reading a tensor once (a sum): what decoding weights is bound by."""
    data = torch.ones(n_bytes // 4)
    return n_bytes / best_seconds(data.sum, repeats)


def measure_ceilings() -> dict:
    return {"fp32_flops": gemm_flops(torch.float32), "bf16_flops": gemm_flops(torch.bfloat16),
            "int8_ops": gemm_flops(torch.int8), "read_bytes_per_s": read_bandwidth(),
            "copy_bytes_per_s": copy_bandwidth(), "threads": torch.get_num_threads(), "matrix_units": list(matrix_units())}


def describe(ceilings: dict) -> str:
    return (f"ceilings ({ceilings['threads']} threads): fp32 {ceilings['fp32_flops'] / 1e9:,.0f} GFLOP/s, "
            f"bf16 {ceilings['bf16_flops'] / 1e9:,.0f} GFLOP/s, int8 {ceilings['int8_ops'] / 1e9:,.0f} GOP/s, "
            f"read {ceilings['read_bytes_per_s'] / 1e9:.1f} GB/s, copy {ceilings['copy_bytes_per_s'] / 1e9:.1f} GB/s; "
            f"matrix units: {', '.join(ceilings['matrix_units']) or 'none'}")
