"""Several LoRA adapters served over one base model, mixed in one batch (Punica/S-LoRA style):
per-row outputs equal each adapter's own model, greedy replies equal each merged model served
alone, and adapters load and unload while the server runs."""

import asyncio

import httpx
import openai
import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from llmkit.finetune.peft.lora import LoraConfig, apply_lora, load_lora_adapter, merge_lora, save_adapter
from llmkit.finetune.peft.multi_lora import MultiLoRA
from llmkit.serve.server import BackgroundServer, build_state

PROMPTS = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]


def make_adapter(checkpoint, out, seed: int, rank: int, targets: list[str]):
    model = load_checkpoint(checkpoint)
    apply_lora(model, LoraConfig(r=rank, alpha=2.0 * rank, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "lora_B"):
            with torch.no_grad():
                module.lora_B.weight.copy_(torch.randn(module.lora_B.weight.shape, generator=generator) * 0.2)
    save_adapter(model, out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return {"sql": make_adapter(tiny_checkpoint, root / "sql", 1, 4, ["q_proj", "v_proj"]),
            "poet": make_adapter(tiny_checkpoint, root / "poet", 2, 8, ["q_proj", "o_proj", "down_proj"]),
            "late": make_adapter(tiny_checkpoint, root / "late", 3, 2, ["up_proj"])}


def test_each_row_gets_its_own_adapters_output(tiny_checkpoint, adapters):
    model = load_checkpoint(tiny_checkpoint).double().eval()
    multi = MultiLoRA(model, max_loras=2, max_rank=8)
    slots = [multi.load("sql", adapters["sql"]), 0, multi.load("poet", adapters["poet"])]
    tokens = torch.tensor([PROMPTS[0][:3], PROMPTS[1], PROMPTS[2][:3]])
    multi.select(slots)
    with torch.no_grad():
        mixed = model(tokens)  # (3, T, V)
    for row, name in enumerate(["sql", None, "poet"]):
        single = load_checkpoint(tiny_checkpoint).double().eval()
        if name is not None:
            load_lora_adapter(single, adapters[name])
        with torch.no_grad():
            expected = single(tokens[row: row + 1])[0]
        torch.testing.assert_close(mixed[row], expected, atol=1e-9, rtol=0)


def merged_greedy(checkpoint, adapter_dir, prompts, n: int) -> list[list[int]]:
    model = load_checkpoint(checkpoint).eval()
    if adapter_dir is not None:
        load_lora_adapter(model, adapter_dir)
        model = merge_lora(model)
    engine = Engine(model, config=EngineConfig(block_size=4, num_blocks=256))
    return [o[0].token_ids for o in engine.generate(prompts, SamplingParams(max_tokens=n, ignore_eos=True))]


def test_mixed_batches_equal_each_merged_model_served_alone(tiny_checkpoint, adapters):
    state = build_state(tiny_checkpoint, model_name="base", loras={"sql": str(adapters["sql"]), "poet": str(adapters["poet"])},
                        max_loras=3, engine_config=EngineConfig(block_size=4, num_blocks=512))
    with BackgroundServer(state) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        names = ["base", "sql", "poet"]
        assert [m.id for m in openai.OpenAI(base_url=url + "/v1", api_key="none").models.list().data] == names

        async def ask(name, prompt):
            out = await client.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=0,
                                                  extra_body={"ignore_eos": True})
            return out.choices[0].text, out.model

        async def all_at_once():  # every adapter's requests in flight together: they share batches
            return await asyncio.gather(*[ask(name, p) for name in names for p in PROMPTS])

        answers = asyncio.run(all_at_once())
        for k, name in enumerate(names):
            expected = merged_greedy(tiny_checkpoint, None if name == "base" else adapters[name], PROMPTS, 8)
            got = answers[k * len(PROMPTS): (k + 1) * len(PROMPTS)]
            assert [model for _, model in got] == [name] * len(PROMPTS)
            assert [text for text, _ in got] == [state.tokenizer.decode(ids) for ids in expected], name

        # load a third adapter at run time, use it, unload it
        r = httpx.post(url + "/v1/load_lora_adapter", json={"lora_name": "late", "lora_path": str(adapters["late"])})
        assert r.status_code == 200, r.text
        out = openai.OpenAI(base_url=url + "/v1", api_key="none").completions.create(
            model="late", prompt=PROMPTS[0], max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
        assert out.choices[0].text == state.tokenizer.decode(merged_greedy(tiny_checkpoint, adapters["late"], PROMPTS[:1], 6)[0])
        assert httpx.post(url + "/v1/unload_lora_adapter", json={"lora_name": "late"}).status_code == 200
        r = httpx.post(url + "/v1/completions", json={"model": "late", "prompt": "x"})
        assert r.status_code == 404
        assert httpx.post(url + "/v1/unload_lora_adapter", json={"lora_name": "nope"}).status_code == 404
        full = httpx.post(url + "/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/nonexistent"})
        assert full.status_code == 400
