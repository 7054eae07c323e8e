"""The scheduler on its own: no model, a fake step that 'samples' token 7 whenever a request has
computed all its tokens (vLLM-style scheduler tests)."""

import pytest

from llmkit.decode.scheduler import Request, Scheduler, SchedulerConfig, Status


def make(num_blocks=64, **kw) -> Scheduler:
    return Scheduler(SchedulerConfig(num_blocks=num_blocks, block_size=4, **kw))


def fake_step(s: Scheduler):
    out = s.schedule()
    new, finished = {}, set()
    for rid, n in out.num_tokens.items():
        r = s.requests[rid]
        if r.num_computed_tokens + n == r.num_tokens:
            new[rid] = 7
            if len(r.output_ids) + 1 >= r.max_tokens:
                finished.add(rid)
    s.update(out.num_tokens, new, finished)
    return out


def run_all(s: Scheduler, limit=1000):
    steps = []
    while s.has_work():
        steps.append(fake_step(s))
        assert len(steps) < limit, "scheduler made no progress"
    return steps


def req(rid, prompt_len, max_tokens=3, first=0):
    return Request(rid, list(range(first, first + prompt_len)), max_tokens)


def test_admission_respects_budget_and_sequence_limit():
    s = make(max_tokens_per_step=10, max_num_seqs=2)
    for i in range(3):
        s.add(req(f"r{i}", 4))
    out = s.schedule()
    assert out.num_tokens == {"r0": 4, "r1": 4}  # r2 waits: only two sequences may run
    assert [r.id for r in s.waiting] == ["r2"]


def test_chunked_prefill_splits_a_long_prompt_while_others_decode():
    s = make(max_tokens_per_step=8)
    s.add(req("short", 2, max_tokens=10))
    fake_step(s)  # short prefilled, now decoding
    s.add(req("long", 20))
    chunks = []
    while s.requests["long"].num_computed_tokens < 20:
        out = fake_step(s)
        assert out.num_tokens["short"] == 1 and out.total_tokens <= 8
        chunks.append(out.num_tokens["long"])
    assert chunks == [7, 7, 6]


def test_without_chunking_a_prompt_waits_for_a_whole_step_budget():
    s = make(max_tokens_per_step=8, chunked_prefill=False)
    s.add(req("a", 5, max_tokens=5))
    fake_step(s)
    s.add(req("b", 8, first=50))
    out = s.schedule()
    assert "b" not in out.num_tokens  # 1 decode + 8 prompt tokens > 8


def test_preemption_recompute_frees_the_newest_and_everyone_finishes():
    s = make(num_blocks=6, max_tokens_per_step=64)  # 24 token slots
    for i in range(3):
        s.add(req(f"r{i}", 6, max_tokens=6, first=100 * i))  # each needs 12 slots to finish
    steps = run_all(s)
    preempted = [rid for out in steps for rid in out.preempted]
    assert preempted and set(preempted) <= {"r1", "r2"}  # r0, the oldest, is never the victim
    assert not s.requests and s.kv.pool.num_free == 6


def test_preempted_request_restarts_from_scratch_and_keeps_its_output():
    s = make(num_blocks=4, max_tokens_per_step=64, prefix_caching=False)
    a, b = req("a", 6, max_tokens=6), req("b", 6, max_tokens=6, first=50)
    s.add(a)
    s.add(b)
    fake_step(s)  # both prefilled: 2 blocks each, pool full
    fake_step(s)
    for _ in range(3):
        out = fake_step(s)
        if out.preempted:
            break
    assert out.preempted == ["b"] and b.status == Status.PREEMPTED and b.num_computed_tokens == 0
    assert len(b.output_ids) >= 1  # generated tokens survive; they are recomputed as prompt
    run_all(s)
    assert len(b.output_ids) == 6


def test_swap_preemption_keeps_computed_tokens_and_maps_blocks_back():
    s = make(num_blocks=4, max_tokens_per_step=64, preemption="swap", prefix_caching=False)
    a, b = req("a", 6, max_tokens=6), req("b", 6, max_tokens=6, first=50)
    s.add(a)
    s.add(b)
    outs = [fake_step(s) for _ in range(4)]
    swapped = next(out for out in outs if out.swap_out)
    assert list(swapped.swap_out) == ["b"] and b.status == Status.SWAPPED and b.num_computed_tokens > 0
    computed = b.num_computed_tokens
    steps = run_all(s)
    swap_in = next(out.swap_in["b"] for out in steps if out.swap_in)
    assert len(swap_in) == -(-computed // 4)
    assert len(b.output_ids) == 6


def test_prefix_cache_reuses_a_shared_system_prompt():
    s = make(max_tokens_per_step=64)
    system = list(range(1000, 1012))  # 3 full blocks
    s.add(Request("first", system + [1, 2], 2))
    run_all(s)
    s.add(Request("second", system + [3, 4, 5], 2))
    out = s.schedule()
    assert s.requests["second"].num_computed_tokens == 12  # three blocks hit
    assert out.num_tokens["second"] == 3
    assert s.kv.stats.hit_tokens == 12


def test_fully_cached_prompt_still_computes_its_last_token():
    s = make(max_tokens_per_step=64)
    prompt = list(range(8))  # exactly two blocks
    s.add(Request("a", prompt, 1))
    run_all(s)
    s.add(Request("b", prompt, 1))
    out = s.schedule()
    assert out.num_tokens["b"] == 4  # the second block is recomputed for its last token's logits


def test_abort_frees_blocks_in_any_state():
    s = make(num_blocks=8, max_tokens_per_step=64)
    s.add(req("run", 8))
    s.add(req("wait", 8))
    s.schedule()
    assert s.abort("run") and s.abort("wait") and not s.abort("nope")
    assert s.kv.pool.num_free == 8 and not s.has_work()


def test_fcfs_order_is_kept_under_pressure():
    s = make(num_blocks=10, max_tokens_per_step=16, max_num_seqs=4)
    finished = []
    for i in range(8):
        s.add(req(f"r{i}", 5, max_tokens=4, first=10 * i))
    while s.has_work():
        before = set(s.requests)
        fake_step(s)
        finished += sorted(before - set(s.requests), key=lambda rid: int(rid[1:]))
    assert finished == [f"r{i}" for i in range(8)]


def test_a_request_larger_than_the_whole_cache_is_refused():
    s = make(num_blocks=2)
    with pytest.raises(ValueError, match="needs 13 tokens"):
        s.add(req("big", 10, max_tokens=3))


def test_unchunked_prompt_longer_than_the_budget_runs_alone_instead_of_hanging():
    s = make(max_tokens_per_step=8, chunked_prefill=False)
    s.add(req("short", 3))
    s.add(req("long", 20, first=100))
    steps = run_all(s)
    alone = [out.num_tokens for out in steps if "long" in out.num_tokens and out.num_tokens["long"] == 20]
    assert alone == [{"long": 20}]  # its whole prompt in one step, with nothing beside it
    assert all(sum(out.num_tokens.values()) <= 8 for out in steps if "long" not in out.num_tokens)


def test_recompute_prefills_prompt_and_output_again():
    s = make(prefix_caching=False)
    s.add(req("a", 5, max_tokens=4))
    fake_step(s)
    fake_step(s)
    s.recompute("a")
    out = s.schedule()
    assert out.num_tokens == {"a": 7} and s.requests["a"].num_computed_tokens == 0  # 5 prompt + 2 generated
