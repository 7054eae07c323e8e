import copy
import json
import math

import pytest
import torch

from llmkit.dist.context import DistContext
from llmkit.model import build_model, named_config
from llmkit.train.config import ScheduleConfig
from llmkit.train.objectives import CausalLM
from llmkit.train.schedules import lr_multiplier
from llmkit.train.trainer import Trainer
from tests.train.helpers import StreamLoader, config, quick_train


def _model(name="tiny-llama", **kw):
    torch.manual_seed(0)
    return build_model(named_config(name).replace(vocab_size=64, **kw), "cpu")


STREAM = torch.arange(64).repeat(200)  # a deterministic cycle: learnable to near-zero loss


def test_loss_falls_and_metrics_are_logged(tmp_path):
    _, state = quick_train(_model(), STREAM, 60, tmp_path)
    assert state.losses[-1] < 0.3 * state.losses[0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 60 and {"step", "loss", "lr", "tokens_per_s", "positions_per_s", "mfu", "grad_norm"} <= set(records[0])


@pytest.mark.parametrize("kind,checks", [
    ("cosine", {0: 0.1, 9: 1.0, 55: 0.55, 100: 0.1}),
    ("linear", {9: 1.0, 55: 0.55, 100: 0.1}),
    ("wsd", {9: 1.0, 79: 1.0, 90: 0.55, 100: 0.1}),
])
def test_schedules(kind, checks):
    cfg = ScheduleConfig(kind=kind, warmup_steps=10, min_lr_ratio=0.1, decay_fraction=0.2)
    for step, expected in checks.items():
        assert lr_multiplier(step, 100, cfg) == pytest.approx(expected), (kind, step)


class FixedLoader:
    def __init__(self, batches):
        self.batches = iter(batches)

    def __next__(self):
        return next(self.batches)

    def state_dict(self):
        return {}


class DataMaskedLM(CausalLM):
    """Targets below 20 carry no loss: rows differ in how many tokens count, independent of RNG."""

    def make_batch(self, inputs, targets, generator=None):
        return {"tokens": inputs, "targets": targets.masked_fill(targets < 20, -100)}


def _one_step(model, batches, accum):
    cfg = config(1, batch_size=len(batches[0][0]))
    cfg.batch.grad_accum = accum
    cfg.optim.grad_clip = 0.0
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is exactly -gradient
    Trainer(model, DataMaskedLM(), cfg, FixedLoader(batches), DistContext(), None, optimizer=sgd).train_step()
    return model


def test_gradient_accumulation_equals_one_big_batch_with_uneven_token_counts():
    """Micro-batches with different numbers of target tokens must still give the gradient of the
    mean over all target tokens of the step (the bug torchtune hit by averaging per micro-batch)."""
    torch.manual_seed(1)
    tokens = torch.randint(0, 64, (8, 17))
    tokens[:4, :12] = 5  # the first half has far fewer target tokens
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    base = _model()
    big = _one_step(copy.deepcopy(base), [(inputs, targets)], 1)
    small = _one_step(copy.deepcopy(base), [(inputs[:4], targets[:4]), (inputs[4:], targets[4:])], 2)
    moved = sum((a - b).abs().sum() for a, b in zip(big.parameters(), base.parameters()))
    assert moved > 0
    for a, b in zip(big.parameters(), small.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


class NaNOnce(CausalLM):
    def __init__(self):
        self.calls = 0

    def loss(self, model, batch):
        loss, n = super().loss(model, batch)
        self.calls += 1
        return (loss * float("nan"), n) if self.calls == 2 else (loss, n)


def test_non_finite_loss_skips_the_step_and_reports_it(tmp_path):
    model = _model()
    trainer, state = quick_train(model, STREAM, 3, tmp_path, objective=NaNOnce())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[1]["skipped"] and records[1]["reason"] == "non-finite loss"
    assert state.skipped_steps == 1 and math.isfinite(records[2]["loss"])


def test_fp16_overflow_skips_and_halves_the_scale(tmp_path):
    model = _model()
    cfg = config(1, precision="fp16")
    trainer = Trainer(model, CausalLM(), cfg, FixedLoader([]), DistContext(), None)
    before = [p.detach().clone() for p in model.parameters()]
    scale = trainer.precision.scaler.get_scale()
    loss = sum(p.sum() for p in model.parameters()) * float("inf")
    trainer.precision.backward(loss)
    trainer.precision.unscale(trainer.optimizer)
    assert trainer.precision.step(trainer.optimizer) is False
    assert trainer.precision.scaler.get_scale() == scale / 2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bf16_autocast_trains(tmp_path):
    _, state = quick_train(_model(), STREAM, 30, tmp_path, precision="bf16")
    assert state.losses[-1] < 0.6 * state.losses[0]


@pytest.mark.parametrize("mode", ["full", "selective"])
def test_activation_checkpointing_keeps_gradients_and_keys(mode):
    from llmkit.dist.parallelize import apply_activation_checkpointing

    plain, wrapped = _model(), _model()
    apply_activation_checkpointing(wrapped, mode, every=2)
    tokens = torch.randint(0, 64, (2, 12))
    for m in (plain, wrapped):
        m(tokens).logsumexp(-1).mean().backward()
    assert list(plain.state_dict()) == list(wrapped.state_dict())
    for (name, a), b in zip(plain.named_parameters(), wrapped.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_throughput_counts_only_the_steps_of_this_run(tmp_path):
    """A resumed run must not credit the steps done before the checkpoint to its own time."""
    fresh, _ = quick_train(_model(), STREAM, 3, tmp_path / "fresh")
    cfg = config(3)
    resumed = Trainer(_model(), CausalLM(), cfg, StreamLoader(STREAM, 32, 8), DistContext(), tmp_path / "resumed")
    resumed.state.step, resumed.state.total_steps = 500, 503
    resumed.fit()
    mfu = lambda run: json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[-1])["mfu"]
    assert mfu("resumed") < 3 * mfu("fresh")  # counting step 503 / 3 steps of time would give ~170x
