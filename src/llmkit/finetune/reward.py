"""Reward models trained on preference pairs with the Bradley-Terry objective (Ouyang et al.,
arXiv 2203.02155): a language-model body with a scalar head on the last token of prompt +
response; loss -log sigmoid(r(chosen) - r(rejected)), averaged over pairs.

A reward checkpoint is the body in the HF layout (with its tokenizer) plus `reward_head.safetensors`
(the head's weight), so the body still loads anywhere a checkpoint does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.errors import LlmkitError
from llmkit.finetune.preference_data import PreferencePair
from llmkit.train.task import StatelessTask

HEAD_FILE = "reward_head.safetensors"


class RewardModel(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body, self.cfg = body, body.cfg
        if not body.cfg.tie_embeddings:  # the LM head plays no part in a reward (and DDP rejects unused parameters)
            body.lm_head.requires_grad_(False)
        weight = next(p for p in body.parameters())
        self.score = nn.Linear(body.cfg.d_model, 1, bias=False, device=weight.device, dtype=weight.dtype)
        nn.init.normal_(self.score.weight, std=body.cfg.d_model**-0.5)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scalar rewards (B,) of right-padded sequences tokens (B, T) with `lengths` real tokens."""
        hidden = self.body.hidden_states(tokens)  # (B, T, C)
        last = hidden[torch.arange(len(tokens), device=tokens.device), lengths - 1]  # (B, C)
        return self.score(last).squeeze(-1).float()


def reward_batch(pairs: list[PreferencePair], pad_id: int) -> dict[str, torch.Tensor]:
    """Whole sequences (not shifted): chosen and rejected, right-padded, with their lengths."""
    out = {}
    for side in ("chosen", "rejected"):
        seqs = [getattr(p, side).ids for p in pairs]
        tokens = torch.full((len(seqs), max(map(len, seqs))), pad_id, dtype=torch.long)
        for row, ids in enumerate(seqs):
            tokens[row, : len(ids)] = torch.tensor(ids)
        out[side], out[f"{side}_len"] = tokens, torch.tensor([len(s) for s in seqs])
    return out


class RewardTask(StatelessTask):
    """Bradley-Terry as a Task of the training loop: (sum of pair losses, number of pairs)."""

    name = "reward"

    def __init__(self):
        self.last_margins: torch.Tensor | None = None

    def make_batch(self, pairs: dict, _targets=None, generator=None) -> dict:
        return pairs | {"targets": torch.zeros(pairs["chosen"].shape[0], dtype=torch.long)}

    def loss(self, model: RewardModel, batch: dict) -> tuple[torch.Tensor, int]:
        """Both sides in one forward pass (one backward per forward, as data parallelism needs)."""
        n, width = len(batch["chosen"]), max(batch["chosen"].shape[1], batch["rejected"].shape[1])
        tokens = torch.cat([F.pad(batch[side], (0, width - batch[side].shape[1])) for side in ("chosen", "rejected")])
        rewards = model(tokens, torch.cat([batch["chosen_len"], batch["rejected_len"]]))  # (2n,)
        chosen, rejected = rewards[:n], rewards[n:]
        self.last_margins = (chosen - rejected).detach()
        return -F.logsigmoid(chosen - rejected).sum(), n


def save_reward_model(model: RewardModel, out_dir: str | Path, tokenizer=None) -> Path:
    out = save_checkpoint(model.body, out_dir, tokenizer=tokenizer)
    save_file({"score.weight": model.score.weight.detach().contiguous().cpu()}, str(Path(out) / HEAD_FILE))
    return Path(out)


def load_reward_model(checkpoint_dir: str | Path, device: str = "cpu") -> RewardModel:
    path = Path(checkpoint_dir)
    if not (path / HEAD_FILE).is_file():
        raise LlmkitError(f"{path} is not a reward model: no {HEAD_FILE} (train one with `llmkit reward train`)")
    model = RewardModel(load_checkpoint(path, device=device))
    model.score.weight.data.copy_(load_file(str(path / HEAD_FILE))["score.weight"])
    return model.eval()
