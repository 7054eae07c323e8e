"""Chat templates: Jinja rendering the way transformers does it (sandboxed, trim_blocks,
lstrip_blocks, `raise_exception`), so the same template gives the same prompt text."""

from __future__ import annotations

import functools
import json
from typing import Any

from llmkit.errors import LlmkitError

# ChatML, the default for tokenizers llmkit trains.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@functools.lru_cache(maxsize=16)
def _compile(template: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_chat(template: str, messages: list[dict[str, str]], add_generation_prompt: bool, **variables: Any) -> str:
    from jinja2.exceptions import TemplateError

    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise LlmkitError(f"chat message {i} must be an object with 'role' and 'content', got {message!r}")
    try:
        return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **variables)
    except TemplateError as err:
        raise LlmkitError(f"chat template rejected the conversation: {err}") from None
