"""Quantization-aware training: the loss falls with fake-quantized weights, gradients pass straight
through, and quantizing the trained model afterwards reproduces the training-time numerics."""

import json

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.compress.quantize import quantize_model
from llmkit.train.fake_quant import FakeQuantLinear, apply_fake_quant


def test_straight_through_gradient_equals_the_plain_linear_gradient():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 8)
    fake = FakeQuantLinear(linear, bits=4, group_size=128)
    x = torch.randn(5, 256)
    fake(x).sum().backward()
    grad = linear.weight.grad.clone()  # the same Parameter
    linear.weight.grad = None
    torch.nn.functional.linear(x, linear.weight, linear.bias).sum().backward()
    assert torch.allclose(grad, linear.weight.grad)
    assert not torch.allclose(fake(x), linear(x))  # but the forward pass is quantized


def test_qat_run_then_quantization_matches_training_numerics(prepared_data, tmp_path):
    out = tmp_path / "qat"
    assert main(["pretrain", "--data", str(prepared_data), "--out", str(out), "--model", "tiny-llama", "--qat", "int4",
                 "--max-steps", "40", "--batch.seq_len", "32", "--batch.batch_size", "4", "--eval-every", "0",
                 "--optim.lr", "3e-3", "--schedule.warmup-steps", "5",
                 "--no-progress"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] - 1.0
    trained = load_checkpoint(out / "final")  # a plain checkpoint: fake quantization left no trace in the names
    apply_fake_quant(trained, 4)
    deployed = load_checkpoint(out / "final")
    quantize_model(deployed, "int4")
    tokens = torch.randint(0, trained.cfg.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(trained(tokens), deployed(tokens), atol=1e-5)
