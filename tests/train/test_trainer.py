import pytest
import torch

from llmkit.data.windows import random_windows, sequential_windows
from llmkit.model import build_model, named_config
from llmkit.train import CausalLMTask, TrainConfig, evaluate_loss, train
from llmkit.train.trainer import lr_at, planned_steps


def test_loss_falls_on_a_learnable_stream(tmp_path):
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu")
    stream = torch.arange(64).repeat(200)  # a deterministic cycle: learnable to near-zero loss
    batches = random_windows(stream, 32, 8, seed=0)
    result = train(model, batches, CausalLMTask(), TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5),
                   metrics_path=tmp_path / "m.jsonl", progress=False)
    assert result.losses[-1] < 0.3 * result.losses[0]
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 60 and {"step", "loss", "lr", "tokens_per_s"} <= set(eval(lines[0]))
    val = evaluate_loss(model, sequential_windows(stream, 32, 8), CausalLMTask())
    assert val < 0.3 * result.losses[0]


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)


def test_time_budget_shortens_the_schedule():
    cfg = TrainConfig(max_steps=1000, max_minutes=1.0)
    assert planned_steps(cfg, steps_done=10, seconds=5.0) == 120
    assert planned_steps(TrainConfig(max_steps=50), 10, 5.0) == 50


def test_ignore_index_targets_carry_no_loss():
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama"), "cpu")
    inputs, targets = torch.randint(0, 4096, (2, 8)), torch.randint(0, 4096, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -100
    with torch.no_grad():
        logits = model(inputs)
        expected = torch.nn.functional.cross_entropy(logits[:, 4:].flatten(0, 1), targets[:, 4:].flatten())
        assert CausalLMTask().loss(model, (inputs, masked)) == pytest.approx(expected.item(), rel=1e-5)
