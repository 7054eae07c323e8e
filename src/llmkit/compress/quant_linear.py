"""Weight-only integer formats and the runtime Linear that holds them.

    int8: symmetric, one scale per output channel (or per group of `group_size` inputs);
          w = q * scale, q in [-127, 127]
    int4: asymmetric, one scale and zero point per group of `group_size` inputs (the GPTQ/AWQ
          convention); w = (q - zero) * scale, q in [0, 15], two codes packed per byte

`input_scale` (AWQ) divides the input channels before the matmul: y = Q(W diag(s)) (x / s).
`dynamic` (int8 per channel only) also quantizes each input row to int8 at run time, with its own
scale max|x|/127, and multiplies integers (torch._int_mm, int32 accumulation):
y = (x_q q^T) * s_x * s_w.
The forward pass dequantises the weight and calls F.linear, except for per-channel int8 on the
CPU for one row (decoding) against a large weight: there a small C++ kernel
(kernels/int8_linear.cpp) reads the int8 weights directly, a quarter of fp32's bytes.
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

INT8_KERNEL_SOURCE = Path(__file__).with_name("kernels") / "int8_linear.cpp"
# Measured on this CPU (2 threads): one row against a 2048 x 2048 weight 1.67x fp32's F.linear, a
# 4096 x 4096 one 1.68x; 4 rows 0.89x and a 1024 x 1024 weight 0.84x (call overhead), so the kernel
# serves single-row calls on weights of at least 2M entries and everything else dequantises.
KERNEL_MIN_WEIGHTS = 2 * 1024 * 1024


def int8_kernel():
    return build_extension("llmkit_int8_linear", str(INT8_KERNEL_SOURCE))


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
        if (self.bits == 8 and not self.group_size and self.input_scale is None and x.device.type == "cpu"
                and x.dtype == torch.float32 and self.scales.dtype == torch.float32 and x.numel() == self.in_features
                and self.in_features * self.out_features >= KERNEL_MIN_WEIGHTS and not torch.is_grad_enabled()
                and int8_kernel() is not None):
            y = int8_kernel().int8_linear(x.reshape(1, -1), self.qweight, self.scales[:, 0].contiguous())
            y = y.view(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, int{self.bits}, group={self.group_size or 'channel'}"
                f"{', dynamic int8 activations' if self.dynamic else ''}")
