"""Pipeline schedules: stage placement and the bubble fraction of each schedule's own action order
(checked against the textbook formulas where they exist)."""

import pytest

from llmkit.dist.pipeline_schedules import (
    bubble_fraction,
    rank_stages,
    single_stage_order,
    stages_per_rank,
    torch_order,
)
from llmkit.errors import LlmkitError


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
@pytest.mark.parametrize("pp,microbatches", [(2, 4), (4, 8), (4, 4), (8, 32)])
def test_single_stage_bubble_is_the_textbook_fraction(name, pp, microbatches):
    orders = {rank: single_stage_order(name, pp, microbatches, rank) for rank in range(pp)}
    assert bubble_fraction(orders, pp) == pytest.approx((pp - 1) / (microbatches + pp - 1))


def test_1f1b_keeps_at_most_pp_micro_batches_alive():
    pp, microbatches = 4, 8
    for rank in range(pp):
        alive = peak = 0
        for kind, _, _ in single_stage_order("1f1b", pp, microbatches, rank):
            alive += 1 if kind == "F" else -1
            peak = max(peak, alive)
        assert peak == pp - rank  # GPipe would keep all 8


def _torch_orders(schedule_class: str, pp: int, microbatches: int, per_rank: int) -> dict:
    from types import SimpleNamespace

    from torch.distributed.pipelining._schedule_visualizer import get_schedule_ops

    table = get_schedule_ops(schedule_class, pp, microbatches, per_rank)
    fake = SimpleNamespace(pipeline_order=dict(enumerate(table)))
    return {rank: torch_order(fake, rank) for rank in range(pp)}


@pytest.mark.parametrize("pp,microbatches", [(2, 4), (4, 8)])
def test_interleaving_and_zero_bubble_shrink_the_bubble(pp, microbatches):
    one_f_one_b = bubble_fraction({r: single_stage_order("1f1b", pp, microbatches, r) for r in range(pp)}, pp)
    interleaved = bubble_fraction(_torch_orders("Interleaved1F1B", pp, microbatches, 2), 2 * pp)
    zero_bubble = bubble_fraction(_torch_orders("InterleavedZeroBubble", pp, microbatches, 2), 2 * pp)
    zbv = bubble_fraction(_torch_orders("ZBVZeroBubble", pp, microbatches, 2), 2 * pp)
    # Megatron's interleaved formula with v = 2 virtual stages: (p - 1) / (v m + p - 1)
    assert interleaved == pytest.approx((pp - 1) / (2 * microbatches + pp - 1))
    assert zero_bubble < interleaved < one_f_one_b and zbv < interleaved


def test_a_deadlocking_order_is_reported():
    orders = {0: [("F", 0, 0), ("B", 0, 0)], 1: [("B", 1, 0), ("F", 1, 0)]}  # backward before its forward
    with pytest.raises(LlmkitError, match="deadlocks"):
        bubble_fraction(orders, 2)


def test_stage_placement():
    assert [rank_stages("interleaved_1f1b", 2, 2, r) for r in range(2)] == [[0, 2], [1, 3]]
    assert [rank_stages("zbv", 2, 2, r) for r in range(2)] == [[0, 3], [1, 2]]
    assert rank_stages("1f1b", 4, 1, 3) == [3]
    assert stages_per_rank("zero_bubble", 0) == 2 and stages_per_rank("gpipe", 0) == 1
    with pytest.raises(LlmkitError, match="one stage per rank"):
        stages_per_rank("1f1b", 2)
    with pytest.raises(LlmkitError, match="exactly two"):
        stages_per_rank("zbv", 3)
