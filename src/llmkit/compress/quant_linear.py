"""Weight-only integer formats and the runtime Linear that holds them.

    int8: symmetric, one scale per output channel (or per group of `group_size` inputs);
          w = q * scale, q in [-127, 127]
    int4: asymmetric, one scale and zero point per group of `group_size` inputs (the GPTQ/AWQ
          convention); w = (q - zero) * scale, q in [0, 15], two codes packed per byte

`input_scale` (AWQ) divides the input channels before the matmul: y = Q(W diag(s)) (x / s).
`dynamic` (int8 per channel only) also quantizes each input row to int8 at run time, with its own
scale max|x|/127, and multiplies integers (torch._int_mm, int32 accumulation):
y = (x_q q^T) * s_x * s_w.
The forward pass dequantises the weight and calls F.linear, except for a few rows (decoding) on
the CPU: there a C++ kernel (kernels/weight_only_linear.cpp) reads the stored codes directly, int8
a quarter of fp32's bytes and int4 an eighth, since decoding is bound by the weight bytes it reads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.errors import LlmkitError
from llmkit.quant.int_grid import dequantize, quant_params, quantize_with
from llmkit.host.native import build_extension

__all__ = ["QuantLinear", "dequantize", "quant_params", "quantize_with", "pack_int4", "unpack_int4"]

KERNEL_SOURCE = Path(__file__).with_name("kernels") / "weight_only_linear.cpp"
# The kernels keep a block of four weight rows in L1 while every input row passes over it: up to
# this many input rows they beat converting the whole weight and calling the fp32 GEMM, past it the
# GEMM's blocking wins. Measured on a 3072 x 576 weight (2 threads, AVX2): bf16 and int8 kernels
# 1.57 vs 2.41 ms at 32 rows, 3.0 vs 3.4 at 64, 6.1 vs 4.9 at 128; int4 3.3 vs 3.7 at 32, 6.7 vs 5.2 at 64.
# fp32 (AVX-512 EPYC, 1536 x 576): kernel 0.025 vs GEMM 0.050 ms at 1 row, 0.254 vs 0.307 at 16, 0.445 vs 0.378 at 32.
KERNEL_MAX_ROWS = {8: 64, 16: 64, 4: 32, 32: 8}  # by bits of the stored weights


def weight_only_kernel():
    """The compiled module with int8_linear, int4_linear, bf16_linear and fp32_linear, or None (no toolchain)."""
    return build_extension("llmkit_weight_only_linear", str(KERNEL_SOURCE))


def kernel_rows(x: torch.Tensor, in_features: int, bits: int) -> int:
    """How many rows of x a weight-only kernel would compute (0: this call is not for the kernel)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled():
        return 0
    rows = x.numel() // in_features
    return rows if rows <= KERNEL_MAX_ROWS[bits] and weight_only_kernel() is not None else 0


def on_rows(x: torch.Tensor, in_features: int, out_features: int, bias: torch.Tensor | None, linear) -> torch.Tensor:
    """A kernel `linear` ((M, in) -> (M, out)) applied to x (..., in), reshaped back, plus the bias."""
    y = linear(x.reshape(-1, in_features)).view(*x.shape[:-1], out_features)
    return y if bias is None else y + bias


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """(out, in) codes 0..15 -> (out, in / 2) uint8, low nibble first."""
    q = q.to(torch.uint8)
    return q[:, 0::2] | (q[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    return torch.stack([packed & 0x0F, packed >> 4], dim=-1).reshape(packed.shape[0], -1)


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int, bias: bool,
                 input_scale: bool = False, device=None, dtype=torch.float32, dynamic: bool = False):
        super().__init__()
        if bits not in (4, 8):
            raise LlmkitError(f"bits must be 4 or 8, got {bits}")
        if dynamic and (bits != 8 or group_size):
            raise LlmkitError("dynamic activation quantization needs int8 weights with one scale per channel")
        self.in_features, self.out_features, self.bits, self.group_size = in_features, out_features, bits, group_size
        self.dynamic = dynamic
        n_groups = in_features // (group_size or in_features)
        kw = {"device": device}
        shape = (out_features, in_features if bits == 8 else in_features // 2)
        self.register_buffer("qweight", torch.zeros(shape, dtype=torch.int8 if bits == 8 else torch.uint8, **kw))
        self.register_buffer("scales", torch.ones(out_features, n_groups, dtype=dtype, **kw))
        self.register_buffer("zeros", torch.zeros(out_features, n_groups, dtype=torch.uint8, **kw) if bits == 4 else None)
        self.register_buffer("input_scale", torch.ones(in_features, dtype=dtype, **kw) if input_scale else None)
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, **kw) if bias else None)

    @classmethod
    def from_codes(cls, q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int, group_size: int,
                   bias: torch.Tensor | None, input_scale: torch.Tensor | None = None, dynamic: bool = False) -> QuantLinear:
        out_f, in_f = q.shape
        module = cls(in_f, out_f, bits, group_size, bias is not None, input_scale is not None, q.device, scale.dtype,
                     dynamic)
        module.qweight = q.to(torch.int8) if bits == 8 else pack_int4(q)
        module.scales = scale.contiguous()
        if zero is not None:
            module.zeros = zero.to(torch.uint8)
        if input_scale is not None:
            module.input_scale = input_scale.contiguous()
        if bias is not None:
            module.bias = bias.detach().clone()
        return module

    def codes(self) -> torch.Tensor:
        return self.qweight if self.bits == 8 else unpack_int4(self.qweight)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (out, in), built on demand."""
        zero = None if self.zeros is None else self.zeros.float()
        return dequantize(self.codes(), self.scales.float(), zero, self.group_size).to(self.scales.dtype)

    def _dynamic_forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()  # (M, in)
        x_scale = rows.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127  # (M, 1)
        x_q = torch.round(rows / x_scale).clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(x_q, self.qweight.T.contiguous()).float() * x_scale * self.scales[:, 0].float()[None, :]
        y = y.view(*x.shape[:-1], self.out_features).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            return self._dynamic_forward(x)
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        if self._kernel_layout() and kernel_rows(x, self.in_features, self.bits):
            return on_rows(x, self.in_features, self.out_features, self.bias, self._kernel_forward)
        if self.bf16_compute and x.dtype == torch.float32 and not torch.is_grad_enabled():
            # many rows (prefill) on a CPU whose bf16 GEMM is several times its fp32 one
            y = F.linear(x.to(torch.bfloat16), self.weight.to(torch.bfloat16)).float()
            return y if self.bias is None else y + self.bias.float()
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    # Set by llmkit.infer.fuse.prepare_for_inference (LLM.load(fast_cpu=True)) where bf16 matmuls are
    # fast: past the kernels' row limit, the dequantised weight multiplies in bf16 (inference only).
    bf16_compute = False

    def _kernel_layout(self) -> bool:
        """int8 with one scale per row, or int4 in groups of a multiple of 16 inputs, fp32 scales."""
        if self.scales.dtype != torch.float32:
            return False
        return not self.group_size if self.bits == 8 else (self.group_size or self.in_features) % 16 == 0

    def _kernel_forward(self, rows: torch.Tensor) -> torch.Tensor:
        kernel = weight_only_kernel()
        if self.bits == 8:
            return kernel.int8_linear(rows, self.qweight, self.scales[:, 0].contiguous())
        return kernel.int4_linear(rows, self.qweight, self.scales, self.zeros, self.group_size or self.in_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, int{self.bits}, group={self.group_size or 'channel'}"
                f"{', dynamic int8 activations' if self.dynamic else ''}")
