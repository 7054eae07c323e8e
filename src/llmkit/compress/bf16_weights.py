"""bf16 weights with fp32 activations, for inference on CPUs (llama.cpp runs its f16 files the
same way). Batch-1 decoding reads every weight once per token, so its speed is set by the weight
bytes: bf16 storage halves them, while the activations, norms, residual stream and accumulation
stay fp32. A model converted wholesale to bf16 instead computes in bf16, which CPUs without bf16
matrix units (AVX2, most AVX-512) emulate: slower than fp32 and less accurate.

    store_bf16_weights(model)   # in place: Linears -> BF16WeightLinear, the rest fp32

Inference only: the weights are frozen. Up to 64 rows (decoding, also batched) go through the
weight-only C++ kernel; more rows (prefill) through one GEMM, in bf16 where the CPU has bf16 units and else in fp32
on a converted copy of the weight, which the GEMM's reuse of every weight pays for.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.compress.quant_linear import kernel_rows, on_rows, weight_only_kernel
from llmkit.host.ceilings import bf16_is_fast


class BF16WeightLinear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        # a bf16 Parameter is kept as it is: a tied output head keeps sharing the embedding's tensor
        self.weight = weight if isinstance(weight, nn.Parameter) and weight.dtype == torch.bfloat16 \
            else nn.Parameter(weight.detach().to(torch.bfloat16), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernel_rows(x, self.in_features, 16):
            return on_rows(x, self.in_features, self.out_features, self.bias,
                           lambda rows: weight_only_kernel().bf16_linear(rows, self.weight))
        if x.dtype == torch.float32 and x.device.type == "cpu" and bf16_is_fast():
            y = F.linear(x.to(torch.bfloat16), self.weight).float()
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bf16 weights, fp32 activations"


class BF16Embedding(nn.Module):
    """A bf16 embedding table whose rows come out fp32 (tied heads share the table)."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.weight.shape
        self.weight = embedding.weight if embedding.weight.dtype == torch.bfloat16 else \
            nn.Parameter(embedding.weight.detach().to(torch.bfloat16), requires_grad=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.weight).float()


def store_bf16_weights(model: nn.Module) -> nn.Module:
    """In place: every plain Linear and Embedding keeps bf16 weights behind an fp32 interface, and
    every other parameter and buffer (norms, biases, position tables) becomes fp32."""
    swaps = {}
    for name, module in model.named_modules():
        if type(module) is nn.Linear:
            swaps[name] = BF16WeightLinear(module.weight, module.bias)
        elif type(module) is nn.Embedding:
            swaps[name] = BF16Embedding(module)
    for name, module in swaps.items():
        model.set_submodule(name, module)
    kept = {id(m.weight) for m in swaps.values()}
    for module in model.modules():
        for key, param in list(module._parameters.items()):
            if param is not None and id(param) not in kept and param.is_floating_point() and param.dtype != torch.float32:
                module._parameters[key] = nn.Parameter(param.detach().float(), requires_grad=False)
        for key, buf in list(module._buffers.items()):
            if buf is not None and buf.is_floating_point() and buf.dtype != torch.float32:
                module._buffers[key] = buf.float()
    return model.requires_grad_(False)
