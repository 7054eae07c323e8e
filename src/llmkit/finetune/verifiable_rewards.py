"""Reward functions for PPO and GRPO: built-in verifiable rewards by name, a user's Python function
by `module:function`, or a trained reward model. Every one maps (completion text, prompt record)
to a float; the record is the prompt's JSONL line, so checks can read fields such as "answer"."""

from __future__ import annotations

import importlib
import re

import torch

from llmkit.data.safety_sets import is_refusal
from llmkit.errors import LlmkitError
from llmkit.finetune.rollouts import RewardFn


def _answer(record: dict) -> str:
    if "answer" not in record:
        raise LlmkitError("this reward needs an \"answer\" field on every prompt record; add it to the JSONL")
    return str(record["answer"]).strip()


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def exact_match(completion: str, record: dict) -> float:
    """1 when the completion, whitespace- and case-normalised, equals the record's answer."""
    return float(_normalise(completion) == _normalise(_answer(record)))


def contains_answer(completion: str, record: dict) -> float:
    """1 when the answer appears as a whole word in the completion."""
    return float(re.search(rf"(?<!\w){re.escape(_normalise(_answer(record)))}(?!\w)", _normalise(completion)) is not None)


def answer_prefix(completion: str, record: dict) -> float:
    """Partial credit: the share of the answer's characters the completion gets right from the start,
    minus a small penalty for anything after the answer (a denser signal than exact match)."""
    answer, text = _normalise(_answer(record)), _normalise(completion)
    matched = next((i for i, (a, b) in enumerate(zip(answer, text)) if a != b), min(len(answer), len(text)))
    return matched / max(len(answer), 1) - 0.1 * (len(text) > len(answer))


def safe_response(completion: str, record: dict) -> float:
    """Safety: 1 for refusing a record marked "harmful": true, and for not refusing one that is not."""
    return float(is_refusal(completion) == bool(record.get("harmful", False)))


BUILT_IN: dict[str, RewardFn] = {"exact_match": exact_match, "contains_answer": contains_answer,
                                 "answer_prefix": answer_prefix, "safe_response": safe_response}


def resolve_reward_fn(spec: str) -> RewardFn:
    """A built-in name, or `package.module:function` importable from the working directory."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    if ":" not in spec:
        raise LlmkitError(f"unknown reward {spec!r}: use one of {', '.join(BUILT_IN)} or module:function")
    module_name, function_name = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise LlmkitError(f"cannot load reward function {spec!r}: {err}") from err


def reward_model_fn(reward_model, tokenizer) -> RewardFn:
    """Scores chat-formatted prompt + completion with a Bradley-Terry reward model (llmkit reward train)."""
    device = next(reward_model.parameters()).device

    @torch.no_grad()
    def score(completion: str, record: dict) -> float:
        text = tokenizer.apply_chat_template([{"role": "user", "content": record["prompt"]},
                                              {"role": "assistant", "content": completion}],
                                              add_generation_prompt=False)
        ids = tokenizer.encode(text, add_special_tokens=False)
        return float(reward_model(torch.tensor([ids], device=device), torch.tensor([len(ids)], device=device))[0])

    return score
