"""Inference-time transforms: fused projections and bf16 weights keep the model's outputs."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.compress.bf16_weights import BF16WeightLinear
from llmkit.compress.quantize import quantize_model
from llmkit.decode import generate_ids
from llmkit.infer.fuse import FusedProjections, fuse_projections, prepare_for_inference
from llmkit.infer.llm import LLM

PROMPTS = [[5, 17, 42, 9, 33, 8], [61, 2, 2, 40]]


def _logits(model, tokens=torch.tensor([[5, 17, 42, 9, 33, 8, 71, 12]])):
    with torch.inference_mode():
        return model(tokens)


def test_fused_projections_compute_what_the_three_did(trained_small):
    model = load_checkpoint(trained_small).eval()
    reference, tokens = _logits(model), generate_ids(model, PROMPTS, 24)
    assert fuse_projections(model) == 2 * model.cfg.n_layer  # q/k/v and gate/up in every block
    block = model.layers[0]
    assert isinstance(block.attn.qkv_proj, FusedProjections) and not hasattr(block.attn, "q_proj")
    assert not hasattr(block.mlp, "gate_proj")
    assert torch.allclose(_logits(model), reference, atol=1e-5)
    assert generate_ids(model, PROMPTS, 24) == tokens


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_fused_quantized_projections_keep_greedy_tokens(trained_small, method):
    model = load_checkpoint(trained_small).eval()
    quantize_model(model, method)
    reference, tokens = _logits(model), generate_ids(model, PROMPTS, 24)
    assert fuse_projections(model) == 2 * model.cfg.n_layer
    assert torch.allclose(_logits(model), reference, atol=1e-4)
    assert generate_ids(model, PROMPTS, 24) == tokens


def test_bf16_weights_compute_in_fp32_like_the_rounded_fp32_model(trained_small):
    """The reference is the same bf16 weights in an fp32 model: only summation order differs."""
    reference = load_checkpoint(trained_small, dtype=torch.bfloat16).float().eval()
    llm = LLM.load(trained_small, dtype="bf16", fast_cpu=True)
    linears = [m for m in llm.model.modules() if isinstance(m, BF16WeightLinear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert llm.model.layers[0].attn_norm.weight.dtype == torch.float32  # norms and activations fp32
    logits = _logits(llm.model)
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, _logits(reference), atol=1e-4)
    assert generate_ids(llm.model, PROMPTS, 24) == generate_ids(reference, PROMPTS, 24)


def test_kernels_and_dequantising_path_agree_on_greedy_tokens(trained_small, monkeypatch):
    import llmkit.compress.quant_linear as quant_linear

    if quant_linear.weight_only_kernel() is None:
        pytest.skip("no C++ toolchain: the dequantising path serves every call")
    for method in ("int8", "int4"):
        model = load_checkpoint(trained_small).eval()
        quantize_model(model, method)
        prepare_for_inference(model)
        for module in model.modules():  # compare against the fp32 dequantising path, not the bf16 prefill one
            if isinstance(module, quant_linear.QuantLinear):
                module.bf16_compute = False
        with_kernel = generate_ids(model, PROMPTS, 24)
        with monkeypatch.context() as patch:
            patch.setattr(quant_linear, "weight_only_kernel", lambda: None)
            assert generate_ids(model, PROMPTS, 24) == with_kernel, method


def test_multi_lora_serving_keeps_plain_projections(trained_small):
    llm = LLM.load(trained_small, fast_cpu=False)
    assert hasattr(llm.model.layers[0].attn, "q_proj") and llm.model.layers[0].attn.qkv_proj is None


def test_fp32_decode_kernel_keeps_logits_and_greedy_tokens(trained_small):
    from llmkit.compress.quant_linear import weight_only_kernel
    from llmkit.infer.decode_linear import FP32DecodeLinear

    if weight_only_kernel() is None:
        pytest.skip("no C++ toolchain: plain Linears stay")
    reference = load_checkpoint(trained_small).eval()
    llm = LLM.load(trained_small, fast_cpu=True)
    swapped = [m for m in llm.model.modules() if isinstance(m, FP32DecodeLinear)]
    assert len(swapped) == 4 * reference.cfg.n_layer + 1  # qkv, o, gate_up, down per block, and the head
    assert llm.model.lm_head.weight is llm.model.tok_embeddings.weight or not reference.cfg.tie_embeddings
    with torch.inference_mode():  # one row per call: the kernel path, against the model's own GEMM path
        rows = torch.tensor([[5], [17]])
        assert torch.allclose(llm.model(rows), reference(rows), atol=1e-4)
    assert generate_ids(llm.model, PROMPTS, 24) == generate_ids(reference, PROMPTS, 24)


def test_quantized_prefill_in_bf16_stays_close(trained_small):
    """fast_cpu on a CPU with fast bf16: prefill-sized calls of quantized Linears multiply in bf16."""
    from llmkit.compress.quant_linear import QuantLinear

    model = load_checkpoint(trained_small).eval()
    quantize_model(model, "int8")
    tokens = torch.arange(1, 101)[None] % model.cfg.vocab_size  # 100 rows: past the kernels' limit
    reference = _logits(model, tokens)
    prepare_for_inference(model)
    for module in model.modules():
        if isinstance(module, QuantLinear):
            module.bf16_compute = True  # as prepare_for_inference sets it where bf16 is fast
    logits = _logits(model, tokens)
    assert logits.dtype == torch.float32
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max()  # bf16 rounding of weights and inputs
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9
