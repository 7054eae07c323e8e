"""`llmkit pretrain` end to end on prepared shards: outputs, config files, objectives, exact resume."""

import json
import signal
import subprocess
import sys
import time

import pytest

from llmkit.cli import main

BASE = ["--batch.seq_len", "32", "--batch.batch_size", "4", "--schedule.warmup_steps", "2", "--no-progress"]


@pytest.fixture
def data_dir(prepared_data):
    return prepared_data


def test_pretrain_writes_metrics_checkpoints_and_a_usable_final_model(data_dir, tmp_path, capsys):
    from llmkit.infer.llm import LLM

    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(data_dir), "--out", str(out), "--model", "tiny-llama",
                 "--max-steps", "6", "--save-every", "3", "--eval-every", "3", "--eval-batches", "2", *BASE]) == 0
    assert "vocabulary 4,096 -> 400" in capsys.readouterr().out
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 7)) and "val_loss" in records[2]
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"step-000003", "step-000006"}
    assert (out / "loss_curve.png").stat().st_size > 1000
    llm = LLM.load(out / "final")
    assert llm.model.cfg.vocab_size == 400 and isinstance(llm.generate("The", max_new_tokens=3), str)


def test_config_file_with_flag_override(data_dir, tmp_path):
    (tmp_path / "train.yaml").write_text("model: tiny-llama\nmax_steps: 2\noptim:\n  lr: 0.01\nschedule:\n"
                                         "  kind: constant\n  warmup_steps: 1\nbatch:\n  seq_len: 16\n")
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(tmp_path / "train.yaml"), "--data", str(data_dir), "--out", str(out),
                 "--optim.lr", "0.02", "--no-progress"]) == 0
    assert [json.loads(l)["lr"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [0.02, 0.02]


def test_unknown_setting_in_config_is_named(data_dir, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("optim:\n  learning_rate: 0.1\n")
    assert main(["pretrain", "--config", str(tmp_path / "bad.yaml"), "--data", str(data_dir)]) == 2
    assert "config.optim.learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("model,objective", [("tiny-glm", "prefix_lm"), ("tiny-t5", "span_corruption"),
                                             ("tiny-glm", "blank_infilling"), ("tiny-glm", "mlm")])
def test_every_objective_learns(data_dir, tmp_path, model, objective):
    out = tmp_path / objective
    assert main(["pretrain", "--data", str(data_dir), "--out", str(out), "--model", model, "--objective", objective,
                 "--max-steps", "25", "--optim.lr", "0.003", *BASE]) == 0
    losses = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses


def test_objective_needs_the_right_architecture(data_dir, tmp_path, capsys):
    assert main(["pretrain", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--model", "tiny-llama",
                 "--objective", "span_corruption", "--max-steps", "1", *BASE]) == 2
    assert "encoder-decoder" in capsys.readouterr().err


def test_sigkill_then_resume_reproduces_every_loss_bit_for_bit(data_dir, tmp_path):
    args = [sys.executable, "-m", "llmkit", "pretrain", "--data", str(data_dir), "--model", "tiny-llama",
            "--max-steps", "14", "--save-every", "4", "--batch.grad_accum", "2", *BASE]
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    victim = subprocess.Popen([*args, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 10):
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "final").exists()  # it really died mid-run
    subprocess.run([*args, "--out", str(tmp_path / "killed"), "--resume", "auto"], check=True, capture_output=True)
    losses = lambda run: [json.loads(l)["loss"] for l in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses("whole")) == 14 and losses("killed") == losses("whole")


def test_compiled_blocks_train_like_eager(data_dir, tmp_path):
    losses = {}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / name
        assert main(["pretrain", "--data", str(data_dir), "--out", str(out), "--model", "tiny-llama",
                     "--max-steps", "3", *BASE, *flags]) == 0
        losses[name] = [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(abs(a - b) for a, b in zip(losses["eager"], losses["compiled"])) < 1e-4


def test_keep_last_and_tensorboard(data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(data_dir), "--out", str(out), "--model", "tiny-llama", "--max-steps", "6",
                 "--save-every", "2", "--keep-last", "2", "--tensorboard", *BASE]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000006"]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())
