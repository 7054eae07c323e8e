"""schemathesis fuzzes the server's own OpenAPI schema while eight clients stream: no request it
invents gets a 5xx, and the eight streams finish exactly as they do alone."""

import pytest

from llmkit.decode.engine import EngineConfig
from llmkit.serve.server import BackgroundServer, build_state
from tests.serve.hostile import STREAM_BODY, start_streams, stream_completion

schemathesis = pytest.importorskip("schemathesis")


@pytest.mark.slow
def test_fuzzing_one_client_harms_none_of_eight_streams(tiny_checkpoint):
    from hypothesis import HealthCheck, given, settings

    state = build_state(tiny_checkpoint, model_name="tiny", max_queue=256,
                        engine_config=EngineConfig(block_size=16, num_blocks=128))
    with BackgroundServer(state) as url:
        alone = []
        stream_completion(url, STREAM_BODY, alone)
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        threads, results = start_streams(url, 8, {**STREAM_BODY, "max_tokens": 200})
        failures, statuses = [], []
        for path in ("/v1/completions", "/v1/chat/completions"):
            @given(case=schema[path]["POST"].as_strategy())
            @settings(max_examples=60, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                if isinstance(case.body, dict) and "model" in case.body:
                    case.body["model"] = "tiny"  # else every case stops at model_not_found
                response = case.call(base_url=url, timeout=60)
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    failures.append((path, case.body, response.status_code, response.text[:300]))

            fuzz()
        for thread in threads:
            thread.join(timeout=300)
        expected = []
        stream_completion(url, {**STREAM_BODY, "max_tokens": 200}, expected)
    assert not failures, failures[:3]
    assert len(statuses) >= 100 and 200 in statuses and 400 in statuses, sorted(statuses)
    print(sorted(set(statuses)), statuses.count(200))
    assert results == expected * 8 and expected[0][2] and expected[0][3] is None
