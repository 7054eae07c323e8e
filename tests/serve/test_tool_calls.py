"""Tool calling: calls parsed from free replies in the Hermes and Llama 3 formats, `required` and
named choices constrained to the tools' schemas on a random model, and a tiny model fine-tuned in
the test to call a tool under `auto`, all through the openai client against a real server."""

import json

import openai
import pytest
import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state
from llmkit.serve.tool_calls import parse_auto
from llmkit.tokenizer import Tokenizer

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}, "days": {"enum": [1, 2, 3]}},
                   "required": ["city", "days"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"],
        "additionalProperties": False}}}]
NAMES = {"get_weather", "get_time"}
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</tool_call>'


def test_calls_are_read_from_hermes_and_llama_formats():
    content, calls = parse_auto("Let me check. " + CALL, NAMES)
    assert content == "Let me check." and calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "days": 2}
    _, calls = parse_auto('<|python_tag|>{"name": "get_time", "parameters": {"zone": "UTC"}}; '
                          '{"name": "get_weather", "parameters": {"city": "Rome", "days": 1}}', NAMES)
    assert [c["function"]["name"] for c in calls] == ["get_time", "get_weather"]
    for text in ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "<tool_call>{broken</tool_call>",
                 "plain text"):
        assert parse_auto(text, NAMES) == (text, [])


@pytest.fixture(scope="module")
def long_checkpoint(tmp_path_factory, tiny_tokenizer):
    """The tiny model with a 2,048-token context: the tools' JSON is long in a 300-token vocabulary."""
    from llmkit.model import build_model, named_config

    cfg = named_config("tiny-llama").replace(vocab_size=tiny_tokenizer.vocab_size, eos_token_id=tiny_tokenizer.eos_id,
                                             bos_token_id=tiny_tokenizer.bos_id, pad_token_id=tiny_tokenizer.pad_id,
                                             max_seq_len=2048)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tools") / "tiny"
    save_checkpoint(build_model(cfg, "cpu"), path, tokenizer=tiny_tokenizer)
    return path


@pytest.fixture(scope="module")
def server(long_checkpoint):
    state = build_state(long_checkpoint, model_name="tiny", max_queue=32,
                        engine_config=EngineConfig(block_size=16, num_blocks=1024))
    with BackgroundServer(state) as url:
        yield url


def client_for(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_required_gives_valid_calls_of_the_listed_tools(server):
    client = client_for(server)
    out = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, tool_choice="required",
                                         parallel_tool_calls=False, max_tokens=80, temperature=1.0, n=3, seed=0)
    for choice in out.choices:
        assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        arguments = json.loads(call.function.arguments)
        if call.function.name == "get_weather":
            assert arguments["city"] in ("Paris", "Rome") and arguments["days"] in (1, 2, 3)
        else:
            assert call.function.name == "get_time" and arguments["zone"] in ("UTC", "CET")


def test_a_named_function_is_called_and_streamed_as_deltas(server):
    client = client_for(server)
    choice = {"type": "function", "function": {"name": "get_time"}}
    out = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, tool_choice=choice,
                                         max_tokens=40, temperature=0)
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["zone"] in ("UTC", "CET")
    chunks = list(client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, tool_choice=choice,
                                                 max_tokens=40, temperature=0, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].function.name == "get_time"
    assert deltas[0].function.arguments == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_bad_tool_requests_are_400s(server):
    client = client_for(server)
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="tool_choice needs tools"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, tool_choice="required")


def fine_tune_to_call(checkpoint, out_dir):
    """The tiny model taught, in a few hundred steps, to answer the weather question with a call."""
    tokenizer = Tokenizer.from_dir(checkpoint)
    model = load_checkpoint(checkpoint)
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tools=TOOLS)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    target = tokenizer.encode(CALL + "<|im_end|>", add_special_tokens=False)
    ids = torch.tensor([prompt_ids + target])
    labels = torch.full_like(ids, -100)
    labels[0, len(prompt_ids) - 1: -1] = ids[0, len(prompt_ids):]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(model(ids)[0], labels[0], ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 2e-3:
            break
    save_checkpoint(model, out_dir, tokenizer=tokenizer)
    return out_dir


@pytest.mark.slow  # about a minute: 300 fine-tuning steps on a 700-token conversation
def test_a_model_taught_to_call_a_tool_gets_a_parsed_call_under_auto(long_checkpoint, tmp_path):
    tuned = fine_tune_to_call(long_checkpoint, tmp_path / "tuned")
    state = build_state(tuned, model_name="tuned", engine_config=EngineConfig(block_size=16, num_blocks=1024))
    with BackgroundServer(state) as url:
        client = client_for(url)
        out = client.chat.completions.create(model="tuned", messages=MESSAGES, tools=TOOLS, max_tokens=200,
                                             temperature=0)
        choice = out.choices[0]
        assert choice.finish_reason == "tool_calls", choice.message.content
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris", "days": 2}
        # the call and its result go back through the template for the next turn
        follow = MESSAGES + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                             {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
        again = client.chat.completions.create(model="tuned", messages=follow, tools=TOOLS, max_tokens=8, temperature=0)
        assert again.choices[0].finish_reason in ("stop", "length", "tool_calls")
        # without tools the same reply is plain text
        plain = client.chat.completions.create(model="tuned", messages=MESSAGES, max_tokens=200, temperature=0)
        assert plain.choices[0].message.tool_calls is None


def test_empty_contents_in_tool_turns_are_rendered_not_a_500(server):
    """Found by the protocol fuzzer: a tool turn (or a system turn beside tools) without content."""
    import httpx

    messages = [{"role": "system", "content": None}, {"role": "user", "content": "x"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
                {"role": "tool", "content": None, "tool_call_id": "c1"}]
    for tools in (TOOLS, None):
        r = httpx.post(server + "/v1/chat/completions", json={"model": "tiny", "messages": messages, "max_tokens": 2,
                                                              **({"tools": tools} if tools else {})}, timeout=60)
        assert r.status_code == 200, r.text
