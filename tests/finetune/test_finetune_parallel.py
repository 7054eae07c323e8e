"""Fine-tuning runs resume exactly from a periodic checkpoint, and run data parallel under
`torchrun --nproc_per_node 2` with the same losses and adapter as one process on the same global batch."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.finetune.test_finetune_run import write_task

FLAGS = ["--method", "lora", "--batch.seq_len", "64", "--optim.lr", "1e-2", "--schedule.kind", "constant",
         "--schedule.warmup-steps", "1", "--lora.dropout", "0", "--no-progress"]


def finetune(checkpoint, data, out, *extra, nproc=1, steps=6, batch=4):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    args = ["-m", "llmkit", "finetune", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
            "--max-steps", str(steps), "--batch.batch_size", str(batch), *FLAGS, *extra]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def adapter(out):
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


def test_lora_run_resumes_exactly_from_its_checkpoint(tiny_checkpoint, tmp_path):
    data = write_task(tmp_path / "task.jsonl")
    straight = finetune(tiny_checkpoint, data, tmp_path / "straight", "--save-every", "3")
    assert (tmp_path / "straight" / "checkpoints" / "step-000003" / "trainer.json").is_file()
    resumed_out = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step-000003", resumed_out / "checkpoints" / "step-000003")
    resumed = finetune(tiny_checkpoint, data, resumed_out, "--resume", "auto")
    assert resumed == straight[3:]  # bit for bit: steps 4-6 after restoring model, optimizer, loader and RNG
    a, b = adapter(tmp_path / "straight"), adapter(resumed_out)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.dist
@pytest.mark.xdist_group("torchrun")
def test_torchrun_data_parallel_matches_one_process(tiny_checkpoint, tmp_path):
    data = write_task(tmp_path / "task.jsonl")
    single = finetune(tiny_checkpoint, data, tmp_path / "one", batch=4)
    parallel = finetune(tiny_checkpoint, data, tmp_path / "two", nproc=2, batch=2)
    assert parallel == pytest.approx(single, abs=1e-4)
    a, b = adapter(tmp_path / "one"), adapter(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def align(checkpoint, data, out, *extra, nproc=1):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    args = ["-m", "llmkit", "align", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
            "--reward-fn", "tests.finetune.test_rl:share_of_e", "--batch.batch_size", "4", "--max-new-tokens", "8",
            "--optim.lr", "3e-2", "--schedule.kind", "constant", "--schedule.warmup-steps", "1", "--held-out", "0.2",
            "--no-progress", "--lora.target-modules", "q_proj", "v_proj", *extra]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_ppo_resumes_exactly_at_a_rollout_boundary(tiny_checkpoint, tmp_path):
    from tests.finetune.test_rl import write_prompts

    data = write_prompts(tmp_path / "prompts.jsonl", n=20)
    ppo = ["--method", "ppo", "--ppo-epochs", "2", "--max-steps", "8"]
    straight = align(tiny_checkpoint, data, tmp_path / "straight", *ppo, "--save-every", "4")
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step-000004", tmp_path / "resumed" / "checkpoints" / "step-000004")
    resumed = align(tiny_checkpoint, data, tmp_path / "resumed", *ppo, "--resume", "auto")
    assert resumed == straight[4:]


@pytest.mark.dist
@pytest.mark.xdist_group("torchrun")
def test_rl_and_reward_training_run_under_torchrun(tiny_checkpoint, tmp_path):
    from tests.finetune.test_align import write_prefs
    from tests.finetune.test_rl import write_prompts

    losses = align(tiny_checkpoint, write_prompts(tmp_path / "prompts.jsonl", n=20), tmp_path / "grpo",
                   "--method", "grpo", "--max-steps", "3", nproc=2)
    assert len(losses) == 3 and json.loads((tmp_path / "grpo" / "summary.json").read_text())["world_size"] == 2
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run([*launcher, "-m", "llmkit", "reward", "train", "--checkpoint", str(tiny_checkpoint),
                             "--data", str(write_prefs(tmp_path / "prefs.jsonl")), "--out", str(tmp_path / "rm"),
                             "--max-steps", "3", "--batch.batch_size", "4", "--no-progress"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "rm" / "final" / "reward_head.safetensors").is_file()
