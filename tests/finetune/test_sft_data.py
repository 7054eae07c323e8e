"""SFT data: the loss falls on assistant tokens only, checked token by token."""

import json

import pytest
import torch

from llmkit.errors import LlmkitError
from llmkit.finetune.sft_data import (
    SFTLoader,
    collate,
    encode_conversation,
    read_conversations,
    sft_examples,
)
from llmkit.train.task import IGNORE_INDEX

CONVERSATION = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
                {"role": "assistant", "content": "6 of course"}]


def test_only_assistant_content_and_end_of_turn_carry_loss(tiny_tokenizer):
    ids, trained = encode_conversation(tiny_tokenizer, CONVERSATION)
    assert tiny_tokenizer.decode(ids, skip_special_tokens=False) == tiny_tokenizer.apply_chat_template(
        CONVERSATION, add_generation_prompt=False)
    trained_text = tiny_tokenizer.decode([t for t, f in zip(ids, trained) if f], skip_special_tokens=False)
    assert trained_text == "4<|im_end|>\n6 of course<|im_end|>\n"
    context = tiny_tokenizer.decode([t for t, f in zip(ids, trained) if not f], skip_special_tokens=False)
    assert "Be exact." in context and "2+2?" in context and "<|im_start|>assistant\n" in context
    assert "4" not in context.replace("<|im_start|>", "")


def test_targets_are_shifted_and_masked(tiny_tokenizer):
    [example] = sft_examples(tiny_tokenizer, [CONVERSATION], max_len=512)
    inputs, targets = collate([example], pad_id=0)
    for position in range(inputs.shape[1]):
        expected = example.ids[position + 1] if example.trained[position + 1] else IGNORE_INDEX
        assert targets[0, position].item() == expected


def test_instruction_records_and_bad_lines(tmp_path):
    good = tmp_path / "data.jsonl"
    good.write_text(json.dumps({"instruction": "Add", "input": "2 3", "output": "5"}) + "\n\n"
                    + json.dumps({"messages": CONVERSATION}) + "\n")
    conversations = read_conversations(good)
    assert conversations[0] == [{"role": "user", "content": "Add\n\n2 3"}, {"role": "assistant", "content": "5"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n{oops\n")
    with pytest.raises(LlmkitError, match=r"bad.jsonl:2: not valid JSON"):
        read_conversations(bad)
    (tmp_path / "noreply.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(LlmkitError, match="at least one assistant turn"):
        read_conversations(tmp_path / "noreply.jsonl")


def test_loader_resumes_at_the_next_batch(tiny_tokenizer):
    examples = sft_examples(tiny_tokenizer, [CONVERSATION[:3], CONVERSATION] * 3, max_len=64)
    a = SFTLoader(examples, batch_size=2, pad_id=0, seed=1)
    batches = [next(a) for _ in range(5)]
    b = SFTLoader(examples, batch_size=2, pad_id=0, seed=1)
    b.load_state_dict({"step": 3})
    assert all((x == y).all() for x, y in zip(next(b), batches[3]))


def test_packed_rows_give_each_conversation_exactly_its_unpacked_loss(tiny_checkpoint):
    """Per-document masks and restarted positions: packing changes nothing but the padding."""
    from llmkit.checkpoint import load_checkpoint
    from llmkit.finetune.sft_data import (
        collate,
        collate_packed,
        pack_examples,
        sft_examples,
    )
    from llmkit.tokenizer import Tokenizer
    from llmkit.train.objectives import CausalLM, PackedCausalLM

    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    model = load_checkpoint(tiny_checkpoint).eval()
    chats = [[{"role": "user", "content": f"Say {w} {i}"}, {"role": "assistant", "content": f"{w} " * (i + 1)}]
             for i, w in enumerate(["fox", "dog", "list", "file", "item"])]
    examples = sft_examples(tokenizer, chats, max_len=200)
    rows = pack_examples(examples, row_len=3 * max(len(e.ids) for e in examples))
    assert len(rows) < len(examples) and sum(map(len, rows)) == len(examples)
    packed_inputs, packed_targets = collate_packed(rows, pad_id=0)
    task = PackedCausalLM()
    with torch.no_grad():
        packed, count = task.loss(model, task.make_batch(packed_inputs, packed_targets))
        separate = [CausalLM().loss(model, CausalLM().make_batch(*collate([e], 0))) for e in examples]
    assert count == sum(c for _, c in separate)
    assert torch.allclose(packed, sum(loss for loss, _ in separate), rtol=1e-5)
    assert (packed_inputs["segments"] >= -1).all() and packed_inputs["pos"].max() < max(len(e.ids) for e in examples)
