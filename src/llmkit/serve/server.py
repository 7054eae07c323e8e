"""Build the serving stack for a checkpoint and run it under uvicorn.

On SIGTERM (or a first SIGINT) the server drains: new work gets 503, in-flight requests may finish
for up to `graceful_timeout` seconds, and the ones still running after that end with a JSON error
(an SSE error event when streaming) instead of a cut connection; then the server exits 0, within
the timeout. A second signal exits at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from llmkit.decode.async_engine import AsyncEngine
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.infer.llm import LLM
from llmkit.decode.paged_attention import decode_kernel
from llmkit.serve.app import create_app
from llmkit.serve.state import ServerState

API_KEY_ENV = "LLMKIT_API_KEY"


def build_state(checkpoint: str | Path, llm: LLM | None = None, model_name: str | None = None,
                api_key: str | None = None, max_queue: int = 256, max_model_len: int | None = None,
                engine_config: EngineConfig | None = None, device: str = "cpu", dtype: str = "auto", adapter=None,
                loras: dict[str, str] | None = None, max_loras: int = 0, max_lora_rank: int = 16,
                **limits) -> ServerState:
    """`limits`: ServerState's max_request_bytes, allowed_hosts, protect_docs, allowed_origins.
    loras: adapter name -> PEFT LoRA directory, served beside the base model in max(max_loras,
    len(loras)) slots (more can be loaded at run time while slots are free)."""
    llm = llm or LLM.load(checkpoint, device=device, dtype=dtype, adapter=adapter,
                          fast_cpu=not (loras or max_loras or adapter))
    multi = None
    if loras or max_loras:
        from llmkit.finetune.peft.multi_lora import MultiLoRA

        multi = MultiLoRA(llm.model, max(max_loras, len(loras or {})), max_lora_rank)
        for name, path in (loras or {}).items():
            multi.load(name, path)
    if device == "cpu":
        decode_kernel()  # build (or load) the paged-attention kernel now, not during the first request
    config = engine_config or EngineConfig()
    if max_model_len is not None:
        config.max_model_len = max_model_len
    engine = Engine(llm.model, llm.tokenizer, config, stop_ids=llm.stop_ids,
                    select_adapters=multi.select if multi is not None else None)
    return ServerState(AsyncEngine(engine), llm.tokenizer, model_name or Path(checkpoint).name, engine.capacity,
                       api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None, max_queue,
                       loras=multi, **limits)


class DrainingServer:
    """uvicorn.Server whose first SIGTERM/SIGINT starts a drain (see the module docstring)."""

    @staticmethod
    def make(config, state: ServerState, graceful_timeout: float):
        import uvicorn

        class Server(uvicorn.Server):
            drain_started: float | None = None

            def handle_exit(self, sig, frame):
                if self.drain_started is None:
                    self.drain_started, state.draining = time.monotonic(), True
                else:  # a second signal: stop now
                    super().handle_exit(sig, frame)

            async def on_tick(self, counter: int) -> bool:
                if await super().on_tick(counter):
                    return True
                if self.drain_started is None:
                    return False
                elapsed = time.monotonic() - self.drain_started
                if state.in_flight == 0:
                    return True
                if elapsed > max(graceful_timeout - 1.0, 0.0):
                    state.stop_event().set()  # the rest end with an error; their answers go out next
                return elapsed > max(graceful_timeout - 0.5, 0.0)

        return Server(config)


def uvicorn_server(state: ServerState, host: str = "127.0.0.1", port: int = 8000, graceful_timeout: float = 30.0,
                   log_level: str = "info"):
    import uvicorn

    # The drain (DrainingServer) uses graceful_timeout; uvicorn's own close only waits for the
    # answers already on their way.
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=1.0)
    return DrainingServer.make(config, state, graceful_timeout)


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def run_server(state: ServerState, **kw) -> None:
    # uvicorn drains on SIGTERM, then re-raises the signal to the handler that was installed before
    # it: make that handler a clean exit (status 0) instead of death by signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uvicorn_server(state, **kw).run()
    finally:
        state.engine.shutdown()


class BackgroundServer:
    """A server on a thread of this process (tests, the demo): `with BackgroundServer(state) as url: ...`."""

    def __init__(self, state: ServerState, host: str = "127.0.0.1", port: int = 0, graceful_timeout: float = 5.0):
        self.state = state
        self.server = uvicorn_server(state, host, port, graceful_timeout=graceful_timeout, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        for _ in range(600):
            if self.server.started:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the server did not start")
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.state.engine.shutdown()
