"""Bradley-Terry reward model: the loss matches its formula, training raises held-out pairwise
accuracy, and the saved model reloads with the same rewards."""

import json
import math

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.finetune.reward import RewardModel, RewardTask, load_reward_model
from tests.finetune.test_align import write_prefs


def test_loss_is_bradley_terry(tiny_checkpoint):
    model = RewardModel(load_checkpoint(tiny_checkpoint)).eval()
    chosen = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]])
    rejected = torch.tensor([[3, 4, 9, 9], [6, 7, 0, 0]])
    batch = {"chosen": chosen, "chosen_len": torch.tensor([3, 4]), "rejected": rejected, "rejected_len": torch.tensor([4, 2])}
    with torch.no_grad():
        total, n = RewardTask().loss(model, batch)
        rc = model(chosen, batch["chosen_len"]).double()
        rr = model(rejected, batch["rejected_len"]).double()
    expected = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(rc.tolist(), rr.tolist()))
    assert n == 2 and abs(total.item() - expected) < 1e-5
    # the reward reads the last real token: padding after it changes nothing
    with torch.no_grad():
        padded = model(torch.tensor([[3, 4, 5, 7, 7]]), torch.tensor([3]))
    assert torch.allclose(padded, rc[:1].float(), atol=1e-5)


def test_reward_training_raises_held_out_accuracy(tiny_checkpoint, tmp_path):
    data = write_prefs(tmp_path / "prefs.jsonl")
    out = tmp_path / "reward"
    assert main(["reward", "train", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                 "--max-steps", "30", "--batch.batch_size", "8", "--batch.seq_len", "64", "--optim.lr", "1e-3",
                 "--schedule.warmup-steps", "2", "--held-out", "0.25", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairwise_accuracy_after"] >= 0.8
    reloaded = load_reward_model(out / "final")
    tokens = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        assert torch.isfinite(reloaded(tokens, torch.tensor([3]))).all()
