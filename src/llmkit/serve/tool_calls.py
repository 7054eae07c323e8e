"""Tool calls (OpenAI function calling): what the model is asked for, and reading its calls back.

`tool_choice`:
- "none": the tools are not shown and nothing is parsed;
- "auto" (the default with tools): the tools reach the chat template; calls are parsed from the reply
  in the formats of the template families llmkit serves: Hermes/Qwen `<tool_call>{json}</tool_call>`
  blocks, and Llama 3.x JSON (`{"name": ..., "parameters": {...}}`, after an optional
  `<|python_tag|>`, several separated by `;`);
- "required": the reply is constrained (llmkit.decode.grammar) to a JSON list of calls, each a tool's
  name and arguments valid for its parameter schema (one call when parallel_tool_calls is false);
- a named function: the reply is constrained to that function's arguments.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from llmkit.decode.grammar import Grammar
from llmkit.serve.errors import APIError

HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_call(name: str, arguments) -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id(), "type": "function", "function": {"name": name, "arguments": text}}


def _parameters(tool: dict) -> dict:
    return tool["function"].get("parameters") or {"type": "object", "properties": {}}


def required_grammar(tools: list[dict], parallel: bool) -> Grammar:
    """A JSON list of one or more calls, each {"name": a tool's name, "parameters": its arguments}."""
    one_of = [{"type": "object", "properties": {"name": {"const": t["function"]["name"]}, "parameters": _parameters(t)},
               "required": ["name", "parameters"], "additionalProperties": False} for t in tools]
    schema = {"type": "array", "items": {"anyOf": one_of}, "minItems": 1}
    if not parallel:
        schema["maxItems"] = 1
    return Grammar("json_schema", schema)


def named_grammar(tools: list[dict], name: str) -> Grammar | None:
    """The named function's arguments; None if no tool has that name."""
    for tool in tools:
        if tool["function"]["name"] == name:
            return Grammar("json_schema", _parameters(tool))
    return None


def parse_required(text: str) -> list[dict]:
    """The calls of a reply constrained by `required_grammar`."""
    return [tool_call(call["name"], call["parameters"]) for call in json.loads(text)]


def parse_auto(text: str, names: set[str]) -> tuple[str | None, list[dict]]:
    """(the reply's remaining text or None, its calls) for a free reply; calls to unknown tools and
    malformed JSON stay text."""
    calls, kept = [], text
    for match in HERMES_CALL.finditer(text):
        call = _as_call(match.group(1), names)
        if call is not None:
            calls.append(call)
            kept = kept.replace(match.group(0), "", 1)
    if not calls:
        body = text.strip().removeprefix("<|python_tag|>").strip()
        parsed = [_as_call(part, names) for part in body.split(";") if part.strip()] if body.startswith("{") else []
        if parsed and all(c is not None for c in parsed):
            calls, kept = parsed, ""
    kept = kept.strip()
    return (kept or None) if calls else text, calls


def _as_call(text: str, names: set[str]) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    return tool_call(value["name"], arguments)


@dataclass(frozen=True)
class ToolMode:
    """How a chat request's tools are used: "auto" parses calls from a free reply; "required" and a
    named function constrain the reply (`grammar`) and read it as calls."""

    choice: str  # "auto" | "required" | "named"
    names: frozenset[str]
    grammar: Grammar | None = None
    function: str | None = None  # the named function


def tool_mode(body) -> ToolMode | None:
    if not body.tools or body.tool_choice == "none":
        return None
    tools = [t.model_dump() for t in body.tools]
    names = frozenset(t["function"]["name"] for t in tools)
    if body.tool_choice is None or body.tool_choice == "auto":
        return ToolMode("auto", names)
    if body.tool_choice == "required":
        return ToolMode("required", names, required_grammar(tools, body.parallel_tool_calls))
    name = body.tool_choice.function.name
    grammar = named_grammar(tools, name)
    if grammar is None:
        raise APIError(400, f"tool_choice names function {name!r}, which is not among the tools ({sorted(names)})",
                       param="tool_choice")
    return ToolMode("named", names, grammar, name)


def chat_message(text: str, reason: str | None, tools: ToolMode | None) -> tuple[dict, str | None]:
    """The assistant message of a reply (its tool calls read back when tools are in use) and the
    finish reason ("tool_calls" when it calls any)."""
    if tools is None:
        return {"role": "assistant", "content": text}, reason
    if tools.choice == "auto":
        content, calls = parse_auto(text, set(tools.names))
    elif reason != "stop":  # a constrained reply cut by max_tokens is not a whole call
        content, calls = text, []
    elif tools.choice == "required":
        content, calls = None, parse_required(text)
    else:
        content, calls = None, [tool_call(tools.function, text)]
    if not calls:
        return {"role": "assistant", "content": content}, reason
    return {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"
