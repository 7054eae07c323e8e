"""Constrained decoding: every reply of a random model parses and validates against its schema,
regex or choice list; invalid grammars are refused with the problem named."""

import json
import re

import pytest

from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.grammar import Grammar
from llmkit.decode.sampling_params import SamplingParams
from llmkit.errors import LlmkitError
from llmkit.infer.llm import LLM

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                                           "ok": {"type": "boolean"},
                                           "size": {"enum": ["small", "large"]}},
          "required": ["name", "ok", "size"], "additionalProperties": False}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    llm = LLM.load(tiny_checkpoint)
    return Engine(llm.model, llm.tokenizer, EngineConfig(block_size=4, num_blocks=512))


def replies(engine, grammar: Grammar, n: int = 8, temperature: float = 1.0) -> list:
    params = SamplingParams(max_tokens=64, temperature=temperature, seed=0, n=n, grammar=grammar)
    return engine.generate(["The list of", "Return"], params)


def test_every_json_schema_reply_parses_and_validates(engine):
    for outputs in replies(engine, Grammar("json_schema", SCHEMA)):
        for out in outputs:
            assert out.finish_reason == "stop", out.text
            value = json.loads(out.text)
            assert set(value) == {"name", "ok", "size"} and isinstance(value["ok"], bool)
            assert len(value["name"]) <= 6 and value["size"] in ("small", "large")


def test_json_object_regex_and_choice(engine):
    for out in replies(engine, Grammar("json_object"), n=4, temperature=0.0)[0]:
        assert out.finish_reason in ("stop", "length")
        if out.finish_reason == "stop":
            assert isinstance(json.loads(out.text), dict)
    for out in replies(engine, Grammar("regex", r"[a-c]{2,4}-[0-9]{2}"))[0]:
        assert re.fullmatch(r"[a-c]{2,4}-[0-9]{2}", out.text), out.text
    for out in replies(engine, Grammar("choice", ["yes", "no", "maybe"]))[1]:
        assert out.text in ("yes", "no", "maybe")


def test_unconstrained_requests_in_the_same_batch_are_untouched(engine):
    free = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    alone = engine.generate(["The list of"], free)[0][0].token_ids
    mixed = engine.generate(["The list of", "Return"], [free, SamplingParams(max_tokens=8, grammar=Grammar("json_object"))])
    assert mixed[0][0].token_ids == alone


@pytest.mark.parametrize(("grammar", "problem"), [
    (Grammar("json_schema", {"type": "nonsense"}), "nonsense"),
    (Grammar("json_schema", {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}), "/nope"),
    (Grammar("regex", "(unclosed"), "regex"),
    (Grammar("choice", []), "choice"),
])
def test_an_invalid_grammar_is_refused_naming_the_problem(engine, grammar, problem):
    with pytest.raises(LlmkitError, match=re.escape(problem)):
        engine.add_request("x", SamplingParams(grammar=grammar))
