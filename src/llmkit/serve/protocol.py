"""Request bodies of the OpenAI-compatible API (the fields llmkit honours; others are ignored),
validated by pydantic so that a bad value is reported with its field name."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SEED_RANGE = (0, 2**63 - 1)


def valid_text(value: str) -> str:
    """A string that UTF-8 can encode: JSON escapes can smuggle in lone surrogates (\\ud800), which
    no tokenizer accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"holds an invalid Unicode code point (a lone surrogate) at position {error.start}") from None
    return value


class StreamOptions(BaseModel):
    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "response"
    description: str | None = None
    json_schema: dict = Field(alias="schema")  # "schema" on the wire
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a json_schema object with a schema")
        return self


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    # llmkit extensions, as vLLM accepts them
    top_k: int | None = Field(default=None, ge=1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    ignore_eos: bool = False
    logit_bias: dict[str, float] | None = None
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    # vLLM's guided-decoding extensions
    guided_json: dict | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value):
        for token, bias in (value or {}).items():
            if not token.lstrip("-").isdigit():
                raise ValueError(f"keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"values must be in [-100, 100], got {bias} for token {token}")
        return value

    @model_validator(mode="after")
    def _stream_options_need_a_stream(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream=true")
        return self

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return [valid_text(s) for s in stops]


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=0)  # 0 only with echo: score the prompt
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    best_of: int | None = Field(default=None, ge=1, le=16)

    @field_validator("prompt")
    @classmethod
    def _valid_prompt(cls, value):
        if isinstance(value, str):
            return valid_text(value)
        return [valid_text(p) if isinstance(p, str) else p for p in value]

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens must be >= 1 (0 only with echo=true, to score the prompt)")
        if self.best_of is not None:
            if self.best_of < self.n:
                raise ValueError(f"best_of ({self.best_of}) must be >= n ({self.n})")
            if self.stream:
                raise ValueError("best_of is not supported with stream=true")
        return self


class ContentPart(BaseModel):
    """One part of a message's content; only text parts are read (a model here sees no images)."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None

    @field_validator("text")
    @classmethod
    def _valid(cls, value):
        return value if value is None else valid_text(value)


class FunctionCall(BaseModel):
    name: str
    arguments: str | dict = "{}"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = ""
    tool_calls: list[ToolCall] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool result: which call it answers
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_only(cls, value):
        if isinstance(value, str):
            return valid_text(value)
        for part in value or []:
            if part.type != "text":
                raise ValueError(f"content part type {part.type!r} is not supported; send text parts")
            if part.text is None:
                raise ValueError("a text content part needs a 'text' string")
        return value

    def text(self) -> str:
        if isinstance(self.content, list):  # [{"type": "text", "text": ...}, ...]
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict | None = None  # a JSON schema of the arguments
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _tools_for_a_choice(self):
        if self.tool_choice not in (None, "none") and not self.tools:
            raise ValueError("tool_choice needs tools: list the functions the model may call")
        return self

    def template_message(self, message: ChatMessage) -> dict:
        """A message as the chat template sees it (tool calls and results included)."""
        out = {"role": "system" if message.role == "developer" else message.role, "content": message.text()}
        if message.tool_calls:
            out["tool_calls"] = [call.model_dump() for call in message.tool_calls]
            out["content"] = out["content"] or None
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        return out
