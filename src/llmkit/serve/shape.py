"""What a request's completions become: the endpoint's response format and the request's options."""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.serve.tool_calls import ToolMode


@dataclass(frozen=True)
class Shape:
    """How a request's completions become a response: the endpoint's format and its options."""

    chat: bool
    echo: bool  # completions: the prompt's text (and log-probs) come first
    want_logprobs: bool
    n: int  # choices returned per prompt (best_of may draw more)
    include_usage: bool  # streams: a last chunk with usage
    stops: tuple[str, ...]
    model: str  # the name asked for (the base model or a LoRA adapter), echoed in the response
    tools: ToolMode | None = None  # chat with tools: the replies' calls are read back
    adapter: tuple[int, int | None] = (0, None)  # its (LoRA slot, KV-cache salt)
