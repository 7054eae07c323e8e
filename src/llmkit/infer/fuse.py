"""Fused projections for inference: q, k and v become one matmul, and so do a gated MLP's gate and
up projections (gpt-fast's wqkv, vLLM's QKVParallelLinear). At batch-1 decode each matmul is a
small call whose fixed cost (dispatch, threads waking, the output allocated) is a large share of
its time; fusing removes 3 of the 7 calls per block, and one larger matrix streams better.

    fuse_projections(model)        # in place; returns the number of modules fused
    prepare_for_inference(model)   # what LLM.load(fast_cpu=True) does: bf16 weights on the CPU, fusion,
                                   # and the fp32 decode kernel

Inference only: the fused model's state dict names differ from the checkpoint's. Linears of the
same kind are fused: plain fp32/bf16 Linears, bf16-weight Linears, and int8/int4 weight-only
QuantLinears with the same format; anything else (adapters, NF4) stays as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from llmkit.compress.bf16_weights import BF16WeightLinear, store_bf16_weights
from llmkit.compress.quant_linear import QuantLinear
from llmkit.host.ceilings import bf16_is_fast
from llmkit.infer.decode_linear import use_fp32_decode_kernel
from llmkit.model.attention import Attention
from llmkit.model.mlp import GatedMLP


class FusedProjections(nn.Module):
    """One Linear over the concatenated weights; returns its output split back into the parts."""

    def __init__(self, linear: nn.Module, sizes: list[int]):
        super().__init__()
        self.linear, self.sizes = linear, sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(x).split(self.sizes, dim=-1)


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors])


def concat_linears(parts: list[nn.Module]) -> nn.Module | None:
    """One module computing what `parts` (same input, same kind) compute, outputs side by side; None
    when they cannot be joined."""
    kind = type(parts[0])
    if kind not in (nn.Linear, BF16WeightLinear, QuantLinear) or any(type(p) is not kind for p in parts) \
            or len({p.bias is None for p in parts}) > 1:
        return None
    bias = None if parts[0].bias is None else _cat([p.bias for p in parts])
    if kind is nn.Linear:
        weight = _cat([p.weight for p in parts])
        fused = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(weight)
            if bias is not None:
                fused.bias.copy_(bias)
        return fused.requires_grad_(False)
    if kind is BF16WeightLinear:
        return BF16WeightLinear(_cat([p.weight for p in parts]), bias)
    if kind is QuantLinear:
        first = parts[0]
        same = all((p.bits, p.group_size, p.dynamic, p.scales.dtype) == (first.bits, first.group_size, first.dynamic,
                                                                        first.scales.dtype) for p in parts)
        if not same or any(p.input_scale is not None for p in parts):  # AWQ scales differ per projection
            return None
        zeros = None if first.zeros is None else _cat([p.zeros for p in parts])
        return QuantLinear.from_codes(_cat([p.codes() for p in parts]), _cat([p.scales for p in parts]), zeros,
                                      first.bits, first.group_size, bias, dynamic=first.dynamic)
    return None


def fuse_projections(model: nn.Module) -> int:
    """Fuse every self-attention's q/k/v and every gated MLP's gate/up in place (not encoder-decoder
    models, whose cross-attention projects another input)."""
    if getattr(model.cfg, "arch", None) == "encoder_decoder":
        return 0
    fused = 0
    for module in list(model.modules()):
        if isinstance(module, Attention) and module.qkv_proj is None:
            parts = [module.q_proj, module.k_proj, module.v_proj]
            joined = concat_linears(parts)
            if joined is not None:
                module.qkv_proj = FusedProjections(joined, [p.out_features for p in parts])
                del module.q_proj, module.k_proj, module.v_proj
                fused += 1
        elif isinstance(module, GatedMLP) and module.gate_up_proj is None:
            parts = [module.gate_proj, module.up_proj]
            joined = concat_linears(parts)
            if joined is not None:
                module.gate_up_proj = FusedProjections(joined, [p.out_features for p in parts])
                del module.gate_proj, module.up_proj
                fused += 1
    return fused


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """What `LLM.load(fast_cpu=True)` does to a model it runs in one process: on the CPU, a bf16 model
    keeps bf16 weights behind fp32 activations; then the projections that share an input are fused;
    then an fp32 model's Linears decode through the streaming kernel; where bf16 matmuls are fast,
    quantized Linears multiply many rows (prefill) in bf16."""
    embedding = getattr(model, "tok_embeddings", None)
    on_cpu = embedding is not None and embedding.weight.device.type == "cpu"
    if on_cpu and embedding.weight.dtype == torch.bfloat16:
        store_bf16_weights(model)
    fuse_projections(model)
    if on_cpu and embedding.weight.dtype == torch.float32:
        use_fp32_decode_kernel(model)
    if on_cpu and bf16_is_fast():
        for module in model.modules():
            if isinstance(module, QuantLinear) and not module.dynamic:
                module.bf16_compute = True  # prefill-sized calls: the dequantised weight in bf16
    return model
