"""Preference pairs for DPO-style alignment: JSONL lines {"prompt", "chosen", "rejected"}, the prompt
as text (one user turn) or as chat messages. Both responses are rendered as the assistant's turn
after the prompt with the checkpoint's chat template; only response tokens carry log-probability."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.datasets import ShuffledBatches, read_jsonl
from llmkit.finetune.sft_data import SFTExample, collate, encode_conversation


@dataclass
class PreferencePair:
    chosen: SFTExample
    rejected: SFTExample


def read_preferences(path: str | Path) -> list[dict]:
    records = []
    for where, record in read_jsonl(path, "preference data"):
        if not isinstance(record, dict) or not {"prompt", "chosen", "rejected"} <= set(record):
            raise LlmkitError(f"{where}: expected \"prompt\", \"chosen\" and \"rejected\" fields")
        records.append(record)
    if not records:
        raise LlmkitError(f"{path} holds no preference pairs")
    return records


def split_pairs(tokenizer, path: str | Path, max_len: int, held_out: float, seed: int):
    """(held-out pairs, training pairs): the file's pairs encoded, shuffled with `seed`, and the first
    `held_out` share kept aside to measure accuracy."""
    pairs = [encode_pair(tokenizer, r, max_len) for r in read_preferences(path)]
    random.Random(seed).shuffle(pairs)
    n_held = int(len(pairs) * held_out)
    return pairs[:n_held], pairs[n_held:]


def encode_pair(tokenizer, record: dict, max_len: int) -> PreferencePair:
    prompt = record["prompt"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    encoded = []
    for key in ("chosen", "rejected"):
        ids, trained = encode_conversation(tokenizer, messages + [{"role": "assistant", "content": record[key]}])
        encoded.append(SFTExample(ids[: max_len + 1], trained[: max_len + 1]))
    return PreferencePair(*encoded)


class PreferenceLoader(ShuffledBatches):
    """Endless shuffled batches of pairs: ({chosen/rejected inputs and targets}, None)."""

    def __init__(self, pairs: list[PreferencePair], batch_size: int, pad_id: int, seed: int = 0):
        super().__init__(pairs, batch_size, lambda picked: (pair_batch(picked, pad_id), None), seed, "preference pairs")


def pair_batch(pairs: list[PreferencePair], pad_id: int) -> dict[str, torch.Tensor]:
    chosen_in, chosen_t = collate([p.chosen for p in pairs], pad_id)
    rejected_in, rejected_t = collate([p.rejected for p in pairs], pad_id)
    return {"chosen": chosen_in, "chosen_targets": chosen_t, "rejected": rejected_in, "rejected_targets": rejected_t}
