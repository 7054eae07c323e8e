"""Preference optimisation as a Task of the one training loop. `loss` returns (sum of per-pair
losses, number of pairs): the trainer's normalisation then averages over pairs, because the
batch's `targets` holds one entry per pair."""

from __future__ import annotations

import copy

import torch

from llmkit.finetune.preference_losses import (
    NEEDS_REFERENCE,
    PREFERENCE_LOSSES,
    sequence_logprobs,
)
from llmkit.train.task import IGNORE_INDEX, StatelessTask


class PreferenceTask(StatelessTask):
    def __init__(self, method: str, policy: torch.nn.Module, beta: float = 0.1, gamma: float = 0.5,
                 lam: float = 0.1, label_smoothing: float = 0.0):
        self.name, self.method = method, PREFERENCE_LOSSES[method]
        self.options = {"dpo": {"beta": beta, "label_smoothing": label_smoothing}, "ipo": {"beta": beta},
                        "simpo": {"beta": beta, "gamma": gamma}, "orpo": {"lam": lam}}[method]
        self.reference = None
        if method in NEEDS_REFERENCE:  # the starting policy, frozen
            self.reference = copy.deepcopy(policy).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        self.last_margins: torch.Tensor | None = None

    def make_batch(self, pairs: dict, _targets=None, generator=None) -> dict:
        n = pairs["chosen"].shape[0]
        return pairs | {"targets": torch.zeros(n, dtype=torch.long)}  # one loss unit per pair

    def positions(self, batch: dict) -> int:
        """Token positions one step of the policy runs: chosen and rejected, padded to one width."""
        return 2 * batch["chosen"].shape[0] * max(batch["chosen"].shape[1], batch["rejected"].shape[1])

    def sequence_scores(self, model, batch: dict) -> dict[str, torch.Tensor]:
        """Summed log-probabilities and lengths of both responses under `model`, in one forward pass."""
        width = max(batch["chosen"].shape[1], batch["rejected"].shape[1])
        tokens = torch.cat([_pad_to(batch["chosen"], width), _pad_to(batch["rejected"], width)])  # (2B, T)
        targets = torch.cat([_pad_to(batch["chosen_targets"], width, IGNORE_INDEX),
                             _pad_to(batch["rejected_targets"], width, IGNORE_INDEX)])
        logp, count = sequence_logprobs(model(tokens), targets)
        n = batch["chosen"].shape[0]
        return {"chosen": logp[:n], "rejected": logp[n:], "chosen_len": count[:n].float(), "rejected_len": count[n:].float()}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        policy = self.sequence_scores(model, batch)
        if self.reference is not None:
            with torch.no_grad():
                ref = self.sequence_scores(self.reference, batch)
            loss, margins = self.method(policy["chosen"], policy["rejected"], ref["chosen"], ref["rejected"], **self.options)
        else:
            loss, margins = self.method(policy["chosen"], policy["rejected"], policy["chosen_len"],
                                        policy["rejected_len"], **self.options)
        self.last_margins = margins
        n = batch["chosen"].shape[0]
        return loss * n, n


def _pad_to(t: torch.Tensor, width: int, value: int = 0) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)
