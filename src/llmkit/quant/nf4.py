"""4-bit NormalFloat weights with double quantisation (QLoRA, Dettmers et al., arXiv 2305.14314),
in plain torch so it runs on CPU.

Weights are cut into blocks of 64; each block is scaled by its absolute maximum and every value is
replaced by the index of the nearest of 16 NF4 levels (quantiles of a standard normal, rescaled to
[-1, 1], with an exact zero), two indices per byte. Double quantisation stores the fp32 block
scales themselves as int8 in groups of 256 (one fp32 scale and offset per group): about 4.13 bits
per weight in all. `NF4Linear` is a frozen Linear that dequantises its weight for each forward
pass; LoRA adapters on top of it train in full precision (QLoRA). A storage format shared by
fine-tuning (QLoRA) and compression (`llmkit compress quantize --method nf4`), so it sits below both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# The 16 NF4 levels from the QLoRA paper (appendix E).
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0])
BLOCK, SCALE_GROUP = 64, 256


def quantize_nf4(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Packed codes (uint8, n/2), int8 block scales, and fp32 per-group scale and offset."""
    flat = weight.detach().float().flatten()
    if flat.numel() % BLOCK:
        raise ValueError(f"NF4 needs a multiple of {BLOCK} weights, got {flat.numel()}")
    blocks = flat.view(-1, BLOCK)  # (nb, 64)
    absmax = blocks.abs().amax(dim=1).clamp(min=1e-12)  # (nb,)
    normalised = blocks / absmax[:, None]
    midpoints = (NF4_LEVELS[1:] + NF4_LEVELS[:-1]) / 2
    codes = torch.bucketize(normalised, midpoints).to(torch.uint8).flatten()  # nearest level, 0..15
    packed = (codes[0::2] << 4) | codes[1::2]
    return {"packed": packed, **_quantize_scales(absmax), "shape": torch.tensor(weight.shape)}


def _quantize_scales(absmax: torch.Tensor) -> dict[str, torch.Tensor]:
    pad = (-absmax.numel()) % SCALE_GROUP
    groups = F.pad(absmax, (0, pad), value=float(absmax.mean())).view(-1, SCALE_GROUP)  # (ng, 256)
    offset = groups.mean(dim=1)
    spread = (groups - offset[:, None]).abs().amax(dim=1).clamp(min=1e-12) / 127
    q = torch.round((groups - offset[:, None]) / spread[:, None]).clamp(-127, 127).to(torch.int8)
    return {"scale_codes": q.flatten()[: absmax.numel()], "scale_step": spread, "scale_offset": offset}


def dequantize_nf4(q: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    codes = torch.stack([q["packed"] >> 4, q["packed"] & 0x0F], dim=1).flatten().long()  # (n,)
    n_blocks = codes.numel() // BLOCK
    group = torch.arange(n_blocks, device=codes.device) // SCALE_GROUP
    absmax = q["scale_codes"].float() * q["scale_step"][group] + q["scale_offset"][group]  # (nb,)
    values = NF4_LEVELS.to(codes.device)[codes].view(n_blocks, BLOCK) * absmax[:, None]
    return values.view(*q["shape"].tolist()).to(dtype)


class _NF4Matmul(torch.autograd.Function):
    """x @ dequant(W).T that saves the 4-bit state, not the dequantised weight, for backward (which
    dequantises again): plain F.linear would keep every layer's full-precision weight alive until
    its backward, giving back much of what 4-bit storage saved."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, module: NF4Linear) -> torch.Tensor:
        ctx.module = module
        return x @ module.weight.T  # (..., out)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return grad_out @ ctx.module.weight.to(grad_out.dtype), None  # the frozen weight gets no gradient


class NF4Linear(nn.Module):
    """A frozen Linear whose weight lives in NF4; the bias (if any) stays in full precision."""

    def __init__(self, linear: nn.Linear, compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.compute_dtype = compute_dtype or linear.weight.dtype
        for name, tensor in quantize_nf4(linear.weight).items():
            self.register_buffer(name, tensor.to(linear.weight.device))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @classmethod
    def empty(cls, in_features: int, out_features: int, bias: bool, device="meta") -> NF4Linear:
        """An NF4Linear with buffers of the right shapes (to load a saved state into)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.in_features, module.out_features, module.compute_dtype = in_features, out_features, torch.float32
        n_blocks = in_features * out_features // BLOCK
        n_groups = -(-n_blocks // SCALE_GROUP)
        module.register_buffer("packed", torch.zeros(in_features * out_features // 2, dtype=torch.uint8, device=device))
        module.register_buffer("scale_codes", torch.zeros(n_blocks, dtype=torch.int8, device=device))
        module.register_buffer("scale_step", torch.zeros(n_groups, device=device))
        module.register_buffer("scale_offset", torch.zeros(n_groups, device=device))
        module.register_buffer("shape", torch.tensor([out_features, in_features], device=device))
        module.bias = nn.Parameter(torch.zeros(out_features, device=device), requires_grad=False) if bias else None
        return module

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (out, in): built on demand, never stored."""
        return dequantize_nf4(self._state(), self.compute_dtype)

    def _state(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("packed", "scale_codes", "scale_step", "scale_offset", "shape")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _NF4Matmul.apply(x, self) if x.requires_grad else F.linear(x, self.weight)
        return y if self.bias is None else y + self.bias

    def storage_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._state().values())


def quantize_model_nf4(model: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Swap every Linear (except `skip`) for an NF4Linear in place; returns how many were swapped."""
    swapped = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] not in skip and module.weight.numel() % BLOCK == 0:
            model.set_submodule(name, NF4Linear(module))
            swapped += 1
    return swapped
