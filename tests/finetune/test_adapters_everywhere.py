"""Every fine-tuning method, through the one adapter interface (llmkit.finetune.peft): trained parts
saved by the method load onto the base model with `LLM.load(adapter=...)` and decode through the
Engine exactly as the trained model computes them (greedy tokens equal a full forward pass of the
training-form model), and the same adapter works in `generate`, `chat`, `serve` (HTTP) and
`evaluate`, and in `merge` where the method folds into the weights."""

import json
from dataclasses import dataclass, field

import httpx
import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.finetune.peft import method, method_for, method_names
from llmkit.finetune.peft.bottleneck import BottleneckConfig
from llmkit.finetune.peft.ia3 import IA3Config
from llmkit.finetune.peft.lora import LoraConfig
from llmkit.infer.llm import LLM
from llmkit.serve.server import BackgroundServer, build_state
from llmkit.tokenizer import Tokenizer

PROMPT = "Return the list"
NEW_TOKENS = 8


@dataclass
class Settings:
    """The fields of the finetune config that methods read."""

    lora: LoraConfig = field(default_factory=lambda: LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"]))
    ia3: IA3Config = field(default_factory=IA3Config)
    adapter: BottleneckConfig = field(default_factory=lambda: BottleneckConfig(bottleneck=8))
    prompt_tokens: int = 4


def test_the_registry_holds_every_method():
    assert method_names() == ["adapter", "dora", "ia3", "lora", "prefix", "prompt", "ptuning", "qlora"]


def trained_adapter(checkpoint, name: str, out):
    """The training-form model after `apply` with its trainable parts set to random values (so the
    adapter changes the output), and the directory the method saved them to."""
    torch.manual_seed(0)
    model = load_checkpoint(checkpoint)
    method(name).apply(model, Settings())
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name == "ia3" else 0.0))
    method(name).save(model, out, base_model=str(checkpoint))
    return model.eval(), out


def full_forward_greedy(model, ids: list[int], n: int) -> list[int]:
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(ids):]


@pytest.mark.parametrize("name", ["lora", "dora", "ia3", "adapter", "prefix", "prompt", "ptuning"])
def test_a_saved_adapter_decodes_as_it_was_trained(tiny_checkpoint, tmp_path, name):
    trained, adapter = trained_adapter(tiny_checkpoint, name, tmp_path / name)
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    ids = tokenizer.encode(PROMPT)
    expected = full_forward_greedy(trained, ids, NEW_TOKENS)
    llm = LLM.load(tiny_checkpoint, adapter=adapter)
    llm.stop_ids = set()  # compare every token
    assert llm.generate_ids([ids], NEW_TOKENS) == [tokenizer.decode(expected)]
    base = LLM.load(tiny_checkpoint)
    base.stop_ids = set()
    assert base.generate_ids([ids], NEW_TOKENS) != [tokenizer.decode(expected)]  # the adapter did change something


def test_a_qlora_adapter_loads_as_lora_onto_the_full_precision_base(tiny_checkpoint, tmp_path):
    _, adapter = trained_adapter(tiny_checkpoint, "qlora", tmp_path / "qlora")
    assert method_for(adapter)[0].name == "lora"
    reference = load_checkpoint(tiny_checkpoint)
    method("lora").load(reference, adapter, method_for(adapter)[1])
    tokenizer = Tokenizer.from_dir(tiny_checkpoint)
    ids = tokenizer.encode(PROMPT)
    llm = LLM.load(tiny_checkpoint, adapter=adapter)
    llm.stop_ids = set()
    assert llm.generate_ids([ids], NEW_TOKENS) == [tokenizer.decode(full_forward_greedy(reference.eval(), ids, NEW_TOKENS))]


@pytest.mark.parametrize("name", ["lora", "ia3", "adapter", "prefix", "prompt"])
def test_serve_takes_the_adapter(tiny_checkpoint, tmp_path, name):
    """The completion over HTTP is the text LLM.load(adapter=...) generates. (No capsys here: the
    server's log handlers would keep writing to the captured stream after the test closes it.)"""
    _, adapter = trained_adapter(tiny_checkpoint, name, tmp_path / name)
    expected = LLM.load(tiny_checkpoint, adapter=adapter).generate(PROMPT, max_new_tokens=NEW_TOKENS)
    with BackgroundServer(build_state(tiny_checkpoint, model_name="tiny", adapter=adapter)) as url:
        reply = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": PROMPT, "temperature": 0,
                                                          "max_tokens": NEW_TOKENS}, timeout=60).json()
    assert reply["choices"][0]["text"] == expected


@pytest.mark.parametrize("name", ["lora", "ia3", "adapter", "prefix", "prompt"])
def test_generate_chat_and_evaluate_take_the_adapter(tiny_checkpoint, tmp_path, capsys, name):
    _, adapter = trained_adapter(tiny_checkpoint, name, tmp_path / name)
    llm = LLM.load(tiny_checkpoint, adapter=adapter)
    expected = llm.generate(PROMPT, max_new_tokens=NEW_TOKENS)
    capsys.readouterr()
    # generate (and generate --chat)
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--adapter", str(adapter), "--prompt", PROMPT,
                 "--max-new-tokens", str(NEW_TOKENS)]) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--adapter", str(adapter), "--chat", "--prompt",
                 "hi", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip() == llm.chat("hi", max_new_tokens=4)
    # evaluate: results name the adapter and differ from the base model's where generation does
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--adapter", str(adapter), "--tasks", "copy",
                 "--limit", "3", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["adapter"] == str(adapter) and results["results"][0]["n"] == 3
    outputs = [s["output"] for s in results["results"][0]["samples"]]
    prompts = [s["prompt"] for s in results["results"][0]["samples"]]
    assert outputs == llm_outputs(llm, prompts)


def llm_outputs(llm, prompts):
    """What the evaluator's copy task gets from this model: the prompts decoded together (as the
    evaluator batches them, so the numerics are the same), cut at the task's stop strings."""
    from llmkit.decode import SamplingParams, generate_ids
    from llmkit.decode.stops import cut_at_stops
    from llmkit.eval.builtin_tasks import builtin_task

    task = builtin_task("copy")
    ids = [llm.tokenizer.encode(p) for p in prompts]
    out = generate_ids(llm.model, ids, task.max_new_tokens, SamplingParams(stop=list(task.stop)), llm.stop_ids,
                       llm.tokenizer)
    return [cut_at_stops(llm.tokenizer.decode(o), task.stop) for o in out]


@pytest.mark.parametrize("name", ["lora", "dora", "ia3"])
def test_merge_folds_mergeable_adapters(tiny_checkpoint, tmp_path, name):
    _, adapter = trained_adapter(tiny_checkpoint, name, tmp_path / name)
    assert main(["merge", "--checkpoint", str(tiny_checkpoint), "--adapter", str(adapter), "--out",
                 str(tmp_path / "merged")]) == 0
    ids = Tokenizer.from_dir(tiny_checkpoint).encode(PROMPT)
    with_adapter = LLM.load(tiny_checkpoint, adapter=adapter)
    merged = LLM.load(tmp_path / "merged")
    with_adapter.stop_ids = merged.stop_ids = set()
    assert merged.generate_ids([ids], NEW_TOKENS) == with_adapter.generate_ids([ids], NEW_TOKENS)


@pytest.mark.parametrize("name", ["adapter", "prefix", "prompt"])
def test_merge_explains_adapters_that_cannot_fold(tiny_checkpoint, tmp_path, capsys, name):
    _, adapter = trained_adapter(tiny_checkpoint, name, tmp_path / name)
    assert main(["merge", "--checkpoint", str(tiny_checkpoint), "--adapter", str(adapter), "--out",
                 str(tmp_path / "merged")]) == 2
    assert "cannot be folded into the weights; load them with --adapter DIR" in capsys.readouterr().err
    assert not (tmp_path / "merged").exists()


def test_a_soft_prompt_does_not_shorten_the_requested_output():
    """The virtual tokens count toward the context the Engine is given, not against the output."""
    from llmkit.decode import generate_ids
    from llmkit.finetune.peft.prompt import use_soft_prompt_for_decoding
    from llmkit.model import build_model, named_config

    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=64, max_seq_len=16), "cpu").eval()
    use_soft_prompt_for_decoding(model, torch.randn(4, model.cfg.d_model))
    assert [len(out) for out in generate_ids(model, [list(range(1, 9))], 8)] == [8]
