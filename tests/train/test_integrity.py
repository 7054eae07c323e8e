"""Training state stays sound: non-finite gradients skip the step, NaN weights are never saved or
resumed, a checkpoint resumes only its own model and data, and a longer --max-steps continues."""

import json
import shutil

import pytest
import torch

from llmkit.cli import main
from llmkit.dist.context import DistContext
from llmkit.model import build_model, named_config
from llmkit.train import checkpointing
from llmkit.train.checkpointing import resume, save_training_checkpoint
from llmkit.train.objectives import CausalLM
from llmkit.train.trainer import Trainer
from tests.train.helpers import StreamLoader, config

STREAM = torch.arange(64).repeat(100)
BASE = ["--batch.seq_len", "16", "--batch.batch_size", "2", "--schedule.warmup_steps", "1", "--no-progress"]


class _Tok:
    def save(self, directory):
        pass


def _trainer(tmp_path, steps=4, **extra):
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu")
    cfg = config(steps, seq_len=16, batch_size=2, **extra)
    return Trainer(model, CausalLM(), cfg, StreamLoader(STREAM, 16, 2), DistContext(), tmp_path / "run")


def test_an_infinite_gradient_skips_the_step_and_keeps_weights_finite(tmp_path):
    trainer = _trainer(tmp_path, steps=3)
    poisoned = {"on": False}
    trainer.model.lm_head.weight.register_hook(lambda g: g * float("inf") if poisoned["on"] else g)
    first = trainer.train_step()
    poisoned["on"] = True
    second = trainer.train_step()
    assert "skipped" not in first and second["skipped"] and second["reason"] == "non-finite gradient norm"
    assert second["grad_norm"] is None and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_weights_are_never_saved_and_auto_resume_skips_them(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path)
    trainer.fit()
    assert save_training_checkpoint(trainer, 2, _Tok(), export=False) is not None
    with torch.no_grad():
        trainer.model.lm_head.weight[0, 0] = float("nan")
    assert save_training_checkpoint(trainer, 3, _Tok(), export=False) is None
    assert not (tmp_path / "run" / "checkpoints" / "step-000003").exists()
    monkeypatch.setattr(checkpointing, "weights_finite", lambda trainer: True)  # plant a NaN checkpoint anyway
    save_training_checkpoint(trainer, 4, _Tok(), export=False)
    monkeypatch.undo()
    fresh = _trainer(tmp_path)
    skipped = []
    assert resume(fresh, "auto", skipped.append).name == "step-000002"
    assert "step-000004" in skipped[0] and all(torch.isfinite(p).all() for p in fresh.model.parameters())


@pytest.fixture
def short_run(prepared_data, tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(prepared_data), "--out", str(out), "--model", "tiny-llama",
                 "--max-steps", "3", "--save-every", "2", *BASE]) == 0
    return out


def test_resume_refuses_another_model_or_other_data(short_run, prepared_data, tmp_path, capsys):
    args = ["pretrain", "--data", str(prepared_data), "--out", str(short_run), "--max-steps", "4", "--resume", "auto"]
    assert main([*args, "--model", "tiny-mistral", *BASE]) == 2
    assert "another model config" in capsys.readouterr().err
    other = tmp_path / "other-data"
    shutil.copytree(prepared_data, other)
    index = json.loads((other / "index.json").read_text())
    index["train"] = index["train"][:1] + index["train"][1:]
    index["note"] = "changed"
    (other / "index.json").write_text(json.dumps(index))
    args[2] = str(other)
    assert main([*args, "--model", "tiny-llama", *BASE]) == 2
    assert "other data" in capsys.readouterr().err


def test_a_longer_max_steps_continues_a_finished_run(short_run, prepared_data):
    assert sorted(p.name for p in (short_run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    assert main(["pretrain", "--data", str(prepared_data), "--out", str(short_run), "--model", "tiny-llama",
                 "--max-steps", "5", "--save-every", "2", "--resume", "auto", *BASE]) == 0
    steps = [json.loads(line)["step"] for line in (short_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_a_default_warmup_shrinks_to_a_tenth_of_a_short_run(capsys):
    from llmkit.train.config import PretrainConfig, ScheduleConfig
    from llmkit.train.schedules import shorten_default_warmup

    short = PretrainConfig(max_steps=30)
    assert "using 3" in shorten_default_warmup(short) and short.schedule.warmup_steps == 3
    chosen = PretrainConfig(max_steps=30, schedule=ScheduleConfig(warmup_steps=100))
    assert shorten_default_warmup(chosen) is None and chosen.schedule.warmup_steps == 100
    long = PretrainConfig(max_steps=5000)
    assert shorten_default_warmup(long) is None and long.schedule.warmup_steps == 100
