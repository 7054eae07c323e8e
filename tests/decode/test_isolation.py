"""One request's failure ends that request alone: non-finite logits, a model that raises, and
sampling numbers at the edge of floating point."""

import math

import pytest
import torch

from llmkit.errors import LlmkitError
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampler import RowState, sample
from llmkit.decode.sampling_params import MIN_TEMPERATURE, SamplingParams
from llmkit.model import build_model, named_config

POISON = 7  # a prompt token that makes the wrapped model fail


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu").eval()


def _row(**params):
    return RowState(SamplingParams(max_tokens=4, **params), torch.Generator().manual_seed(0), [1, 2], [])


def test_a_nan_row_fails_alone_and_extreme_numbers_stay_finite():
    logits = torch.randn(4, 50) * 30
    logits[1] = float("nan")
    logits[2, 3] = float("inf")  # a certain token
    rows = [_row(temperature=1e-300), _row(), _row(temperature=0.7), _row(temperature=0.5, top_p=1e-300,
                                                                        repetition_penalty=100, logprobs=3)]
    out = sample(logits, rows)
    assert out[1].error is not None and all(o.error is None for i, o in enumerate(out) if i != 1)
    assert out[2].token == 3 and out[3].token == int(logits[3].argmax())
    assert all(math.isfinite(v) for v in out[3].top_logprobs.values()) and math.isfinite(out[3].logprob)


@pytest.mark.parametrize("bad", [dict(temperature=float("nan")), dict(temperature=float("inf")),
                                 dict(repetition_penalty=1e-300), dict(repetition_penalty=5e-324),
                                 dict(presence_penalty=float("inf")), dict(seed=-1), dict(seed=2**70),
                                 dict(top_p=float("nan")), dict(n=10**6)])
def test_sampling_numbers_outside_their_ranges_are_refused(bad):
    with pytest.raises(LlmkitError, match=next(iter(bad))):
        SamplingParams(**bad)


def test_a_subnormal_temperature_is_raised_to_the_minimum():
    assert SamplingParams(temperature=5e-324).temperature == MIN_TEMPERATURE


def test_a_request_the_model_fails_on_ends_alone(model):
    engine = Engine(model, config=EngineConfig(block_size=4, num_blocks=64))
    run = engine.runner.execute

    def fragile(work):
        if any(POISON in request.prompt_ids for request, _, _ in work):
            raise RuntimeError("kernel fault")
        return run(work)

    good = [[1, 2, 3], [4, 5, 6, 8], [9, 10]]
    expected = [o[0].token_ids for o in Engine(model, config=EngineConfig(block_size=4, num_blocks=64)).generate(
        good, SamplingParams(max_tokens=6, ignore_eos=True))]
    engine.runner.execute = fragile
    outputs = engine.generate(good[:2] + [[POISON, 1, 2]] + good[2:], SamplingParams(max_tokens=6, ignore_eos=True))
    assert [o[0].token_ids for i, o in enumerate(outputs) if i != 2] == expected
    assert outputs[2][0].finish_reason == "error" and "RuntimeError" in outputs[2][0].error
    assert not engine.tracked and not engine.scheduler.requests  # nothing of the failed request is held
    assert not engine.has_work() and engine.stats["failed_requests"] == 1


def test_the_engine_stops_at_the_chat_templates_end_of_turn_by_default(tiny_checkpoint):
    from llmkit.infer.llm import LLM

    llm = LLM.load(tiny_checkpoint)
    end = llm.tokenizer.token_id("<|im_end|>")
    engine = Engine(llm.model, llm.tokenizer)
    assert end in engine.stop_ids and llm.tokenizer.eos_id in engine.stop_ids
