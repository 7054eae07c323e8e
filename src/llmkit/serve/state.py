"""What the server shares across requests: the engine, the limits, the adapters and the counters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from llmkit.decode.async_engine import AsyncEngine
from llmkit.serve.guard import LOOPBACK_HOSTS
from llmkit.serve.metrics import ServerMetrics


@dataclass
class ServerState:
    engine: AsyncEngine
    tokenizer: object
    model_name: str
    max_model_len: int
    api_key: str | None = None
    max_queue: int = 256
    max_request_bytes: int = 4 * 2**20
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # checked when no API key is set; () allows any
    protect_docs: bool = False  # /metrics and /openapi.json need the API key too
    allowed_origins: tuple[str, ...] = ()  # CORS origins browsers may call from; () adds no CORS headers
    loras: object | None = None  # a MultiLoRA (llmkit.finetune.peft.multi_lora) when adapters are served
    lora_in_flight: dict[str, int] = field(default_factory=dict)  # adapter name -> requests using it now
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    in_flight: int = 0
    draining: bool = False  # SIGTERM received: new work gets 503
    stopping: asyncio.Event | None = None  # set when the drain time is up: in-flight requests end with an error
    created: int = field(default_factory=lambda: int(time.time()))

    def stop_event(self) -> asyncio.Event:
        if self.stopping is None:
            self.stopping = asyncio.Event()
        return self.stopping
