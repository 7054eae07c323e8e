"""An asyncio front for the Engine: one background thread steps the engine while coroutines
stream their own requests' progress. This is what the HTTP server awaits.

    engine = AsyncEngine(Engine(model, tokenizer))
    async for update in engine.stream("Hello", SamplingParams(max_tokens=16)):
        print(update.text)                     # the whole text so far; update.new_token_ids: this step's

Leaving the `async for` early (a client disconnect cancels the task) aborts the request and
frees its KV blocks. Torch work runs on the engine thread only, so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import AsyncIterator

from llmkit.decode.engine import Completion, Engine, RequestFailed
from llmkit.decode.sampling_params import SamplingParams


class AsyncEngine:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.commands: queue.Queue = queue.Queue()
        self.listeners: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self.wake = threading.Event()
        self.stopping = False
        self._ids = itertools.count()
        self.thread = threading.Thread(target=self._loop, name="llmkit-engine", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            self._apply_commands()
            if not self.engine.has_work():
                self.wake.wait(timeout=0.5)
                self.wake.clear()
                continue
            try:
                outputs = self.engine.step()
            except Exception as error:  # noqa: BLE001 - reported to every waiting request, the loop survives
                self._fail_all(error)
                continue
            for out in outputs:
                self._deliver(out.request_id, out)

    def _apply_commands(self) -> None:
        while True:
            try:
                kind, args = self.commands.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                request_id, prompt, params, (slot, salt) = args
                try:
                    self.engine.add_request(prompt, params, request_id, adapter_slot=slot, cache_salt=salt)
                except Exception as error:  # noqa: BLE001 - bad request: tell its caller
                    self._deliver(request_id, error)
            else:
                self.engine.abort(args)

    def _deliver(self, request_id: str, item) -> None:
        listener = self.listeners.get(request_id)
        if listener is not None:
            loop, inbox = listener
            loop.call_soon_threadsafe(inbox.put_nowait, item)

    def _fail_all(self, error: Exception) -> None:
        for request_id in list(self.listeners):
            self.engine.abort(request_id)
            self._deliver(request_id, error)

    async def stream(self, prompt: str | list[int], params: SamplingParams | None = None,
                     request_id: str | None = None, adapter: tuple[int, int | None] = (0, None)) -> AsyncIterator[Completion]:
        """Yield a Completion each time one of this prompt's n completions advances. adapter: (LoRA
        slot, KV-cache salt) of a multi-LoRA model (Engine.add_request)."""
        params = params or SamplingParams()
        request_id = request_id or f"async-{next(self._ids)}"
        inbox: asyncio.Queue = asyncio.Queue()
        self.listeners[request_id] = (asyncio.get_running_loop(), inbox)
        self.commands.put(("add", (request_id, prompt, params, adapter)))
        self.wake.set()
        remaining = params.n
        try:
            while remaining:
                item = await inbox.get()
                if isinstance(item, Exception):
                    raise item
                if item.finish_reason == "error":
                    raise RequestFailed(item.error or "generation failed")
                remaining -= item.finished
                yield item
        finally:
            self.listeners.pop(request_id, None)
            if remaining:  # left early: free the blocks
                self.abort(request_id)

    async def generate(self, prompt: str | list[int], params: SamplingParams | None = None) -> list[Completion]:
        """The final state of each of the prompt's completions."""
        final: dict[int, Completion] = {}
        async for update in self.stream(prompt, params):
            if update.finished:
                final[update.index] = update
        return [final[i] for i in sorted(final)]

    def abort(self, request_id: str) -> None:
        self.commands.put(("abort", request_id))
        self.wake.set()

    def stats(self) -> dict:
        """Queue and cache figures for metrics (read without stopping the engine thread)."""
        scheduler = self.engine.scheduler
        return {"waiting": len(scheduler.waiting), "running": len(scheduler.running),
                "kv_cache_usage": scheduler.kv.usage, "prefix_cache_hit_rate": self.engine.prefix_cache_hit_rate}

    def shutdown(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=5)
