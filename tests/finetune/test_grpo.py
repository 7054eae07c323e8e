"""GRPO on the training loop raises the mean verifiable reward; advantages are group-relative."""

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.dist.context import DistContext
from llmkit.finetune.grpo import GRPOTask, PromptLoader
from llmkit.finetune.peft.lora import LoraConfig, apply_lora
from llmkit.tokenizer import Tokenizer
from llmkit.train.config import OptimConfig, PretrainConfig, ScheduleConfig
from llmkit.train.trainer import Trainer
from tests.finetune.test_rl import share_of_e


def test_grpo_raises_mean_reward(tiny_checkpoint, tmp_path):
    torch.manual_seed(0)
    model = load_checkpoint(tiny_checkpoint)
    apply_lora(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    task = GRPOTask(model, tokenizer, share_of_e, group_size=8, max_new_tokens=12, beta=0.01)
    records = [{"prompt": f"Write something {i}"} for i in range(8)]
    cfg = PretrainConfig(max_steps=40, progress=False, optim=OptimConfig(lr=2e-2),
                         schedule=ScheduleConfig(kind="constant", warmup_steps=1))
    cfg.batch.batch_size = 4
    trainer = Trainer(model, task, cfg, PromptLoader(records, 4), DistContext(), tmp_path)

    def mean_reward(rounds=16):
        scores = []
        for _ in range(rounds):
            task.make_batch(records[:4])
            scores.append(task.last_rewards.mean().item())
        return sum(scores) / len(scores)

    before = mean_reward()
    trainer.fit()
    after = mean_reward()
    print(f"GRPO mean reward {before:.3f} -> {after:.3f}")
    assert after > 2 * before and after > before + 0.05, (before, after)


def test_advantages_are_normalised_within_each_group(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint)
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    task = GRPOTask(model, tokenizer, share_of_e, group_size=4, max_new_tokens=6)
    batch = task.make_batch([{"prompt": "a"}, {"prompt": "b"}])
    grouped = batch["advantages"].view(2, 4)
    assert torch.allclose(grouped.mean(1), torch.zeros(2), atol=1e-5)
    kept = batch["completion_targets"] != -100
    assert kept.any(1).all()  # every sequence has completion tokens to learn from
