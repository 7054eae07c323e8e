"""Quantization quality gates on a model trained in the session (validation perplexity), the
formats' round trips, and quantized checkpoints that save, reload and generate."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.compress.checkpoint import load_compressed, save_compressed
from llmkit.compress.gptq import gptq_quantize
from llmkit.compress.quant_linear import QuantLinear, dequantize, pack_int4, unpack_int4
from llmkit.compress.quantize import quantize_model
from tests.compress.conftest import layer_output_error, perplexity, windows


@pytest.fixture(scope="module")
def eval_setup(trained_small, prepared_data):
    val = windows(prepared_data, "val", count=24)
    calib = list(windows(prepared_data, "train", count=32).split(8))
    base = perplexity(load_checkpoint(trained_small), val)
    results = {}

    def ppl(method: str, group_size: int = 128) -> float:
        if (method, group_size) not in results:
            model = load_checkpoint(trained_small)
            quantize_model(model, method, group_size, calib)
            results[(method, group_size)] = perplexity(model, val)
        return results[(method, group_size)]

    return base, ppl


def test_int8_weight_only_is_within_one_percent(eval_setup):
    base, ppl = eval_setup
    print(f"fp32 {base:.3f} int8 {ppl('int8'):.3f}")
    assert ppl("int8") <= base * 1.01


def test_gptq_int4_is_within_five_percent(eval_setup):
    base, ppl = eval_setup
    print(f"fp32 {base:.3f} rtn-int4 {ppl('int4'):.3f} gptq {ppl('gptq'):.3f} awq {ppl('awq'):.3f}")
    assert ppl("gptq") <= base * 1.05 and ppl("awq") <= base * 1.05


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_calibrated_methods_reconstruct_layer_outputs_better_than_rounding(trained_small, prepared_data, method):
    """Each layer's output error ||X W^T - X Q^T|| on held-out activations, summed over the model:
    what GPTQ and AWQ minimise, and what rounding to nearest does not. (On this small model int4
    moves validation perplexity by under 0.01%, too little to rank methods by; on the demo model
    docs/compression.md records the perplexity ranking.)"""
    error = lambda name: layer_output_error(trained_small, prepared_data,
                                            lambda model, calib: quantize_model(model, name, 128, calib))
    rtn_error, method_error = error("int4"), error(method)
    print(f"layer output error: rtn {rtn_error:.4f} {method} {method_error:.4f}")
    assert method_error < {"gptq": 0.5, "awq": 0.75}[method] * rtn_error


def test_int4_packing_and_dequantisation_round_trip():
    q = torch.randint(0, 16, (6, 256))
    assert torch.equal(unpack_int4(pack_int4(q)).long(), q)
    scale, zero = torch.rand(6, 2) + 0.1, torch.randint(0, 16, (6, 2)).float()
    module = QuantLinear.from_codes(q.float(), scale, zero, 4, 128, None)
    assert torch.allclose(module.weight, dequantize(q.float(), scale, zero, 128))


def test_gptq_with_an_identity_hessian_is_round_to_nearest():
    """With H = I the columns are uncorrelated: no error to spread, GPTQ reduces to rounding."""
    torch.manual_seed(0)
    w = torch.randn(8, 256)
    codes, scale, zero = gptq_quantize(w, torch.eye(256), bits=4, group_size=128, damp=0.0)
    from llmkit.compress.awq import rtn

    rtn_codes, rtn_scale, rtn_zero = rtn(w, 4, 128)
    assert torch.equal(codes.float(), rtn_codes) and torch.allclose(scale, rtn_scale) and torch.equal(zero, rtn_zero)


@pytest.mark.parametrize("method", ["int8", "awq"])
def test_quantized_checkpoint_saves_reloads_and_generates(trained_small, prepared_data, tmp_path, method):
    from llmkit.infer.llm import LLM
    from llmkit.tokenizer import Tokenizer

    model = load_checkpoint(trained_small)
    quantize_model(model, method, 128, list(windows(prepared_data, "train", count=8).split(4)))
    save_compressed(model, tmp_path / "q", method, Tokenizer.from_dir(trained_small))
    size = sum(f.stat().st_size for f in (tmp_path / "q").glob("*.safetensors"))
    full = sum(f.stat().st_size for f in trained_small.glob("*.safetensors"))
    assert size < full * (0.6 if method == "int8" else 0.5)
    reloaded = load_compressed(tmp_path / "q")
    tokens = windows(prepared_data, "val", count=2)[:, :-1]
    with torch.no_grad():
        assert torch.equal(reloaded(tokens), model.eval()(tokens))
    llm = LLM.load(tmp_path / "q")
    assert isinstance(llm.generate("The", max_new_tokens=5), str)


def test_compress_quantize_cli_writes_a_servable_checkpoint(trained_small, prepared_data, tmp_path, capsys):
    from llmkit.cli import main
    from llmkit.infer.llm import LLM

    assert main(["compress", "quantize", "--checkpoint", str(trained_small), "--out", str(tmp_path / "g"),
                 "--method", "gptq", "--calib", str(prepared_data), "--calib-windows", "8", "--calib-len", "64"]) == 0
    assert "MiB on disk" in capsys.readouterr().out
    assert isinstance(LLM.load(tmp_path / "g").generate("The", max_new_tokens=3), str)
    assert main(["compress", "quantize", "--checkpoint", str(trained_small), "--out", str(tmp_path / "x"),
                 "--method", "awq"]) == 2  # calibration is required, and the error says so
    assert "needs calibration text" in capsys.readouterr().err


@pytest.mark.parametrize("bits,group", [(8, 0), (4, 32), (4, 16)])
@pytest.mark.parametrize("rows", [1, 3])
def test_weight_only_kernels_match_dequantised_linear(bits, group, rows):
    from llmkit.compress.awq import rtn
    from llmkit.compress.quant_linear import weight_only_kernel

    if weight_only_kernel() is None:
        pytest.skip("no C++ toolchain: the dequantising path serves every call")
    torch.manual_seed(0)
    w = torch.randn(67, 200 if bits == 8 else 224)  # odd rows and a tail past the 8-wide vectors
    codes, scale, zero = rtn(w, bits, group)
    module = QuantLinear.from_codes(codes, scale, zero, bits, group, torch.randn(len(w)))
    x = torch.randn(rows, 1, w.shape[1])
    with torch.no_grad():
        kernel = module(x)
        reference = torch.nn.functional.linear(x, module.weight, module.bias)
    assert torch.allclose(kernel, reference, atol=1e-4, rtol=1e-4)


def test_bf16_kernel_matches_fp32_matmul_of_the_same_weights():
    from llmkit.compress.quant_linear import weight_only_kernel

    if weight_only_kernel() is None:
        pytest.skip("no C++ toolchain")
    torch.manual_seed(0)
    w, x = torch.randn(37, 203).bfloat16(), torch.randn(2, 203)
    assert torch.allclose(weight_only_kernel().bf16_linear(x, w), x @ w.float().T, atol=1e-4)


@pytest.mark.parametrize("method", ["nf4", "dynamic-int8"])
def test_nf4_and_dynamic_int8_stay_close_and_round_trip(trained_small, prepared_data, tmp_path, eval_setup, method):
    base, ppl = eval_setup
    print(f"fp32 {base:.3f} {method} {ppl(method):.3f}")
    assert ppl(method) <= base * 1.02
    model = load_checkpoint(trained_small)
    quantize_model(model, method)
    save_compressed(model, tmp_path / method, method)
    tokens = windows(prepared_data, "val", count=2)[:, :-1]
    with torch.no_grad():
        assert torch.equal(load_compressed(tmp_path / method)(tokens), model.eval()(tokens))


def test_dynamic_int8_matmul_matches_its_formula():
    from llmkit.compress.awq import rtn

    torch.manual_seed(0)
    w, x = torch.randn(32, 64), torch.randn(3, 64)
    codes, scale, _ = rtn(w, 8, 0)
    module = QuantLinear.from_codes(codes, scale, None, 8, 0, None, dynamic=True)
    x_scale = x.abs().amax(1, keepdim=True) / 127
    want = (torch.round(x / x_scale) * x_scale) @ (codes * scale).T  # dequantised both sides, float math
    assert torch.allclose(module(x), want, atol=1e-4)


def test_the_default_group_size_divides_real_shapes():
    """SmolLM2-135M's 576 inputs do not split into groups of 128: the default takes 64 and says so."""
    from llmkit.compress.quantize import quantize_model
    from llmkit.errors import LlmkitError
    from llmkit.model import build_model, named_config

    cfg = named_config("tiny-llama").replace(d_model=192, n_head=4, n_kv_head=2, d_ff=576, vocab_size=64)
    torch.manual_seed(0)
    assert quantize_model(build_model(cfg, "cpu"), "int4").group_size == 64
    with pytest.raises(LlmkitError, match="use --group-size 64"):
        quantize_model(build_model(cfg, "cpu"), "int4", 128)


def test_gptq_act_order_lowers_the_layer_output_error(trained_small, prepared_data, monkeypatch):
    """Quantizing the busiest input columns first (static groups keep the code layout) beats the
    natural order: measured 26% less layer-output error on this model."""
    from llmkit.compress import quantize as q
    from llmkit.compress.gptq import gptq_quantize as gptq

    errors = {}
    for act_order in (False, True):
        monkeypatch.setattr(q, "gptq_quantize", lambda w, h, b, g, ao=act_order, **_: gptq(w, h, b, g, act_order=ao))
        errors[act_order] = layer_output_error(trained_small, prepared_data,
                                               lambda model, calib: q.quantize_model(model, "gptq", 32, calib))
    assert errors[True] < 0.9 * errors[False], errors
