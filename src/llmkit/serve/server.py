"""Build the serving stack for a checkpoint and run it under uvicorn.

uvicorn handles SIGTERM and SIGINT: it stops accepting connections, lets in-flight requests finish
for up to `graceful_timeout` seconds, then exits; `run_server` then stops the engine thread and
the process exits 0.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from llmkit.infer.async_engine import AsyncEngine
from llmkit.infer.engine import Engine, EngineConfig
from llmkit.infer.llm import LLM
from llmkit.infer.paged_attention import decode_kernel
from llmkit.serve.app import ServerState, create_app

API_KEY_ENV = "LLMKIT_API_KEY"


def build_state(checkpoint: str | Path, llm: LLM | None = None, model_name: str | None = None,
                api_key: str | None = None, max_queue: int = 256, max_model_len: int | None = None,
                engine_config: EngineConfig | None = None, device: str = "cpu") -> ServerState:
    llm = llm or LLM.load(checkpoint, device=device)
    if device == "cpu":
        decode_kernel()  # build (or load) the paged-attention kernel now, not during the first request
    config = engine_config or EngineConfig()
    if max_model_len is not None:
        config.max_model_len = max_model_len
    engine = Engine(llm.model, llm.tokenizer, config, stop_ids=llm.stop_ids)
    return ServerState(AsyncEngine(engine), llm.tokenizer, model_name or Path(checkpoint).name, engine.max_model_len,
                       api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None, max_queue)


def uvicorn_server(state: ServerState, host: str = "127.0.0.1", port: int = 8000, graceful_timeout: float = 30.0,
                   log_level: str = "info"):
    import uvicorn

    config = uvicorn.Config(create_app(state), host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=graceful_timeout)
    return uvicorn.Server(config)


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

    def __init__(self, state: ServerState, host: str = "127.0.0.1", port: int = 0):
        self.state = state
        self.server = uvicorn_server(state, host, port, graceful_timeout=5, log_level="warning")
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
