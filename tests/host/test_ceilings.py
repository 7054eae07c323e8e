"""The machine ceilings benchmarks report against: positive, in the right units, and bf16's speed
claim consistent with the CPU flags it rests on."""

import torch

from llmkit.host.ceilings import bf16_is_fast, describe, gemm_flops, matrix_units, read_bandwidth


def test_gemm_ceilings_are_measured_per_dtype():
    for dtype in (torch.float32, torch.bfloat16, torch.int8):
        flops = gemm_flops(dtype, size=256, repeats=2)
        assert 1e8 < flops < 1e15, (dtype, flops)  # between a slow core and a large GPU


def test_bandwidth_and_flags():
    assert 1e8 < read_bandwidth(n_bytes=2**24, repeats=2) < 1e13
    units = matrix_units()
    assert all(isinstance(u, str) for u in units)
    assert bf16_is_fast() == bool({"amx_bf16", "avx512_bf16"} & set(units))
    text = describe({"fp32_flops": 1e11, "bf16_flops": 7e11, "int8_ops": 8e11, "read_bytes_per_s": 1e10,
                     "copy_bytes_per_s": 8e9, "threads": 2, "matrix_units": ["amx_bf16"]})
    assert "bf16 700 GFLOP/s" in text and "amx_bf16" in text
