"""Preference pairs for DPO-style alignment: JSONL lines {"prompt", "chosen", "rejected"}, the prompt
as text (one user turn) or as chat messages. Both responses are rendered as the assistant's turn
after the prompt with the checkpoint's chat template; only response tokens carry log-probability."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.sft_data import SFTExample, collate, encode_conversation


@dataclass
class PreferencePair:
    chosen: SFTExample
    rejected: SFTExample


def read_preferences(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise LlmkitError(f"preference data {path} does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise LlmkitError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or not {"prompt", "chosen", "rejected"} <= set(record):
            raise LlmkitError(f"{path}:{number}: expected \"prompt\", \"chosen\" and \"rejected\" fields")
        records.append(record)
    if not records:
        raise LlmkitError(f"{path} holds no preference pairs")
    return records


def encode_pair(tokenizer, record: dict, max_len: int) -> PreferencePair:
    prompt = record["prompt"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    encoded = []
    for key in ("chosen", "rejected"):
        ids, trained = encode_conversation(tokenizer, messages + [{"role": "assistant", "content": record[key]}])
        encoded.append(SFTExample(ids[: max_len + 1], trained[: max_len + 1]))
    return PreferencePair(*encoded)


class PreferenceLoader:
    """Endless shuffled batches of pairs: ({chosen/rejected inputs and targets}, None)."""

    def __init__(self, pairs: list[PreferencePair], batch_size: int, pad_id: int, seed: int = 0):
        if not pairs:
            raise LlmkitError("no preference pairs")
        self.pairs, self.batch_size, self.pad_id, self.seed, self.step = pairs, batch_size, pad_id, seed, 0

    def __iter__(self):
        return self

    def __next__(self) -> tuple[dict, None]:
        n = len(self.pairs)
        picked = []
        for i in range(self.step * self.batch_size, (self.step + 1) * self.batch_size):
            order = list(range(n))
            random.Random(self.seed * 100_003 + i // n).shuffle(order)
            picked.append(self.pairs[order[i % n]])
        self.step += 1
        return pair_batch(picked, self.pad_id), None

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


def pair_batch(pairs: list[PreferencePair], pad_id: int) -> dict[str, torch.Tensor]:
    chosen_in, chosen_t = collate([p.chosen for p in pairs], pad_id)
    rejected_in, rejected_t = collate([p.rejected for p in pairs], pad_id)
    return {"chosen": chosen_in, "chosen_targets": chosen_t, "rejected": rejected_in, "rejected_targets": rejected_t}
