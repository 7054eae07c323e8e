"""Loading and unloading LoRA adapters while serving (vLLM's endpoints and shapes):

    POST /v1/load_lora_adapter     {"lora_name": NAME, "lora_path": DIR}
    POST /v1/unload_lora_adapter   {"lora_name": NAME}

A loaded adapter is served under its name (`"model": NAME`) beside the base model, in the same
batches (llmkit.finetune.peft.multi_lora). Unloading waits for nothing: it is refused (409) while
requests for that adapter are in flight.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from llmkit.errors import LlmkitError
from llmkit.serve.errors import APIError


class LoadLoraRequest(BaseModel):
    lora_name: str = Field(min_length=1, max_length=128)
    lora_path: str


class UnloadLoraRequest(BaseModel):
    lora_name: str


def add_lora_routes(app: FastAPI, state, authorised) -> None:
    def adapters():
        if state.loras is None:
            raise APIError(400, "this server was started without LoRA slots; start it with --max-loras N "
                                "(or --lora NAME=DIR)", param="lora_name")
        return state.loras

    @app.post("/v1/load_lora_adapter", dependencies=[Depends(authorised)])
    async def load(body: LoadLoraRequest):
        if body.lora_name == state.model_name:
            raise APIError(400, f"{body.lora_name!r} is the base model's name", param="lora_name")
        try:
            await asyncio.to_thread(adapters().load, body.lora_name, body.lora_path)
        except (LlmkitError, OSError) as error:
            raise APIError(400, str(error), param="lora_path") from None
        return {"status": "ok", "message": f"adapter {body.lora_name!r} loaded"}

    @app.post("/v1/unload_lora_adapter", dependencies=[Depends(authorised)])
    async def unload(body: UnloadLoraRequest):
        if state.lora_in_flight.get(body.lora_name):
            raise APIError(409, f"adapter {body.lora_name!r} has requests in flight; retry when they finish",
                           param="lora_name")
        try:
            adapters().unload(body.lora_name)
        except LlmkitError as error:
            raise APIError(404, str(error), param="lora_name") from None
        return {"status": "ok", "message": f"adapter {body.lora_name!r} unloaded"}
