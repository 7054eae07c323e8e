import asyncio

import pytest
import torch

from llmkit.errors import LlmkitError
from llmkit.decode.async_engine import AsyncEngine
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from llmkit.model import build_model, named_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(named_config("tiny-llama"), "cpu").eval()


def make(model):
    return AsyncEngine(Engine(model, config=EngineConfig(block_size=4, num_blocks=128)))


def test_concurrent_streams_match_the_blocking_engine(model):
    prompts = [[1, 2, 3], list(range(10, 30)), [7] * 9]
    params = SamplingParams(max_tokens=10)
    expected = [o[0].token_ids for o in Engine(model, config=EngineConfig(block_size=4, num_blocks=128)).generate(prompts, params)]
    engine = make(model)

    async def collect(prompt):
        steps = [u async for u in engine.stream(prompt, params)]
        assert all(len(u.new_token_ids) <= 1 for u in steps) and steps[-1].finished
        return steps[-1].token_ids

    async def main():
        return await asyncio.gather(*(collect(p) for p in prompts))

    try:
        assert asyncio.run(main()) == expected
    finally:
        engine.shutdown()


def test_leaving_a_stream_early_aborts_and_frees_blocks(model):
    engine = make(model)

    async def main():
        async for update in engine.stream(list(range(40)), SamplingParams(max_tokens=100)):
            if len(update.token_ids) >= 3:
                break
        for _ in range(100):  # the engine thread applies the abort on its next turn
            if not engine.engine.has_work():
                break
            await asyncio.sleep(0.02)

    try:
        asyncio.run(main())
        pool = engine.engine.scheduler.kv.pool
        assert not engine.engine.has_work() and pool.num_free == pool.num_blocks
    finally:
        engine.shutdown()


def test_a_bad_request_raises_in_its_own_stream(model):
    engine = make(model)

    async def main():
        with pytest.raises(LlmkitError, match="empty"):
            await engine.generate([], SamplingParams())
        return await engine.generate([1, 2], SamplingParams(max_tokens=2))

    try:
        assert len(asyncio.run(main())[0].token_ids) == 2  # the engine survived the bad request
    finally:
        engine.shutdown()
