"""Chat templates: Jinja rendering the way transformers does it (sandboxed, trim_blocks,
lstrip_blocks, `raise_exception`), so the same template gives the same prompt text.

A template comes with the checkpoint, so it is untrusted: besides the sandbox (no attribute
access to internals), rendering stops after RENDER_SECONDS (template code is traced line by line
on the rendering thread alone) and string or list repetition is capped at MAX_REPEAT items, since
one `'x' * 10**10` is a single C call that no deadline can interrupt.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from typing import Any

from llmkit.errors import LlmkitError

# ChatML, the default for tokenizers llmkit trains. With `tools`, they are listed in the system turn
# and calls are written as <tool_call>{"name": ..., "arguments": {...}}</tool_call> (the Hermes/Qwen
# convention, which llmkit.serve parses back); tool results come back as `tool` turns.
CHATML_TEMPLATE = (
    "{% if tools %}"
    "{{ '<|im_start|>system\\n' }}"
    "{% if messages[0]['role'] == 'system' %}{{ (messages[0]['content'] or '') + '\\n\\n' }}{% endif %}"
    "{{ 'You can call these tools. For each call, reply with <tool_call>{\"name\": ..., \"arguments\": {...}}'"
    " + '</tool_call>.\\n<tools>\\n' }}"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}"
    "{{ '</tools><|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>tool\\n<tool_response>\\n' + (message['content'] or '') + '\\n</tool_response><|im_end|>\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') }}"
    "{% for call in message['tool_calls'] or [] %}"
    "{% set arguments = call['function']['arguments'] %}"
    "{{ '<tool_call>{\"name\": ' + (call['function']['name'] | tojson) + ', \"arguments\": ' }}"
    "{{ arguments if arguments is string else (arguments | tojson) }}{{ '}</tool_call>' }}"
    "{% endfor %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


RENDER_SECONDS = 2.0
MAX_REPEAT = 1_000_000


class RenderTimeout(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float | None):
    """Raise RenderTimeout inside template code (compiled as "<template>") running past `seconds`."""
    if not seconds:
        yield
        return
    end = time.monotonic() + seconds

    def local(frame, event, arg):
        if time.monotonic() > end:
            raise RenderTimeout
        return local

    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename == "<template>" else None)
    try:
        yield
    finally:
        sys.settrace(previous)


def _limited_binop(env, operator: str, left, right):
    if operator == "*" and any(isinstance(x, int) and x > MAX_REPEAT for x in (left, right)) \
            and any(isinstance(x, str | list | tuple) for x in (left, right)):
        raise OverflowError(f"the template repeats a sequence more than {MAX_REPEAT:,} times")
    if operator == "**" and isinstance(right, int) and right > 1000:
        raise OverflowError("the template raises to a power above 1000")
    return env.binop_table[operator](left, right)


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    class LimitedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            return _limited_binop(self, operator, left, right)

    env = LimitedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_chat(template: str, messages: list[dict[str, str]], add_generation_prompt: bool,
                timeout: float | None = RENDER_SECONDS, **variables: Any) -> str:
    from jinja2.exceptions import TemplateError

    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise LlmkitError(f"chat message {i} must be an object with 'role' and 'content', got {message!r}")
    try:
        with deadline(timeout):
            return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                             **variables)
    except (TemplateError, TypeError, ValueError, LookupError, AttributeError) as err:
        # a template is code from the checkpoint: whatever it raises on this conversation is the
        # conversation's problem to report (a 400), never a crash of the server
        raise LlmkitError(f"chat template rejected the conversation: {err}") from None
    except RenderTimeout:
        raise LlmkitError(f"the chat template ran for more than {timeout:g} s and was stopped; "
                          "the checkpoint's template loops for too long") from None
    except (OverflowError, MemoryError) as err:
        raise LlmkitError(f"the chat template was stopped: {err}") from None
