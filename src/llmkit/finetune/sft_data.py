"""Supervised fine-tuning data: chat `messages` JSONL or instruction/input/output JSONL, rendered
with the checkpoint's chat template, with the loss on assistant tokens only.

Each message is tokenized as the template renders it, segment by segment (the text a message
adds to the conversation), so a token's owner is known exactly: the assistant's content and its
end-of-turn marker are trained on; system and user turns and the assistant header
(`<|im_start|>assistant\\n` in ChatML) are context only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.datasets import ShuffledBatches, read_jsonl
from llmkit.train.task import IGNORE_INDEX


def read_conversations(path: str | Path) -> list[list[dict[str, str]]]:
    """Conversations from JSONL: {"messages": [{"role", "content"}, ...]} or
    {"instruction", "input"?, "output"} (Alpaca style: one user turn, one assistant turn)."""
    conversations = [_conversation(record, where) for where, record in read_jsonl(path, "fine-tuning data")]
    if not conversations:
        raise LlmkitError(f"{path} holds no examples")
    return conversations


def _conversation(record: dict, where: str) -> list[dict[str, str]]:
    if isinstance(record, dict) and "messages" in record:
        messages = record["messages"]
        ok = isinstance(messages, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
        if not ok or not any(m["role"] == "assistant" for m in messages):
            raise LlmkitError(f"{where}: 'messages' must be a list of {{role, content}} with at least one assistant turn")
        return [{"role": m["role"], "content": str(m["content"])} for m in messages]
    if isinstance(record, dict) and "instruction" in record and "output" in record:
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    raise LlmkitError(f"{where}: expected {{\"messages\": [...]}} or {{\"instruction\", \"output\"}} fields")


def encode_conversation(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered conversation and, per token, whether it carries loss."""
    ids: list[int] = []
    trained: list[bool] = []
    rendered = ""
    for i, message in enumerate(messages):
        upto = tokenizer.apply_chat_template(messages[: i + 1], add_generation_prompt=False)
        if not upto.startswith(rendered):
            raise LlmkitError("the chat template re-renders earlier turns differently; cannot mask turns exactly")
        segment = upto[len(rendered):]
        if message["role"] == "assistant":
            header = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True)[len(rendered):]
            if not segment.startswith(header):
                raise LlmkitError("the chat template's generation prompt does not start the assistant turn")
            _extend(tokenizer, header, False, ids, trained)
            _extend(tokenizer, segment[len(header):], True, ids, trained)
        else:
            _extend(tokenizer, segment, False, ids, trained)
        rendered = upto
    return ids, trained


def _extend(tokenizer, text: str, trained: bool, ids: list[int], flags: list[bool]) -> None:
    if text:
        new = tokenizer.encode(text, add_special_tokens=False)
        ids.extend(new)
        flags.extend([trained] * len(new))


@dataclass
class SFTExample:
    ids: list[int]
    trained: list[bool]


def sft_examples(tokenizer, conversations, max_len: int) -> list[SFTExample]:
    """Encoded examples cut to max_len + 1 tokens (inputs and shifted targets)."""
    examples = []
    for messages in conversations:
        ids, trained = encode_conversation(tokenizer, messages)
        examples.append(SFTExample(ids[: max_len + 1], trained[: max_len + 1]))
    return examples


class SFTLoader(ShuffledBatches):
    """Endless shuffled batches (inputs, targets) of the examples, right-padded to the longest in the
    batch; targets are IGNORE_INDEX except where the next token is an assistant token."""

    def __init__(self, examples: list[SFTExample], batch_size: int, pad_id: int, seed: int = 0):
        super().__init__(examples, batch_size, lambda picked: collate(picked, pad_id), seed, "fine-tuning examples")


def collate(examples: list[SFTExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(e.ids) for e in examples) - 1
    inputs = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.ids) - 1
        inputs[row, :n] = torch.tensor(e.ids[:-1])
        labels = torch.tensor(e.ids[1:])
        keep = torch.tensor(e.trained[1:])
        targets[row, :n] = labels.masked_fill(~keep, IGNORE_INDEX)
    return inputs, targets  # (B, T), (B, T)


def pack_examples(examples: list[SFTExample], row_len: int) -> list[list[SFTExample]]:
    """First-fit packing of examples (in the given order) into rows of at most row_len + 1 tokens."""
    rows: list[list[SFTExample]] = []
    room: list[int] = []
    for e in examples:
        need = len(e.ids)
        slot = next((i for i, free in enumerate(room) if free >= need), None)
        if slot is None:
            rows.append([])
            room.append(row_len + 1)
            slot = len(rows) - 1
        rows[slot].append(e)
        room[slot] -= need
    return rows


def collate_packed(row_groups: list[list[SFTExample]], pad_id: int) -> tuple[dict, torch.Tensor]:
    """Packed rows ({"tokens", "pos", "segments"}, targets), all (B, T): each example's positions start
    at 0 and its segment id keeps attention inside it; padding is a segment of its own (-1)."""
    width = max(sum(len(e.ids) - 1 for e in group) for group in row_groups)
    tokens = torch.full((len(row_groups), width), pad_id, dtype=torch.long)
    targets = torch.full_like(tokens, IGNORE_INDEX)
    pos = torch.arange(width).repeat(len(row_groups), 1)
    segments = torch.full_like(tokens, -1)
    for row, group in enumerate(row_groups):
        start = 0
        for segment, e in enumerate(group):
            n = len(e.ids) - 1
            one_inputs, one_targets = collate([e], pad_id)
            tokens[row, start:start + n], targets[row, start:start + n] = one_inputs[0], one_targets[0]
            pos[row, start:start + n] = torch.arange(n)
            segments[row, start:start + n] = segment
            start += n
        pos[row, start:] = torch.arange(width - start)
    return {"tokens": tokens, "pos": pos, "segments": segments}, targets


class PackedSFTLoader(ShuffledBatches):
    """Endless shuffled batches of packed rows (see collate_packed): several short conversations per
    row of seq_len tokens instead of one per padded row, so far fewer tokens are padding."""

    def __init__(self, examples: list[SFTExample], seq_len: int, batch_size: int, pad_id: int, seed: int = 0):
        order = list(examples)
        random.Random(seed).shuffle(order)  # rows mix conversations from across the file
        rows = pack_examples(order, seq_len)
        super().__init__(rows, batch_size, lambda picked: collate_packed(picked, pad_id), seed, "packed rows")
