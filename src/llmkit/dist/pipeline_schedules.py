"""Pipeline schedules: which torch.distributed.pipelining class runs each, which stages a rank holds,
and the bubble fraction of a schedule's action order.

    gpipe             all forwards, then all backwards (GPipe, arXiv 1811.06965)
    1f1b              one forward, one backward in the steady state (PipeDream-Flush, arXiv 2006.09503)
    interleaved_1f1b  v virtual stages per rank, looped placement (Megatron-LM, arXiv 2104.04473)
    zero_bubble       interleaved, with backward split into input- and weight-gradient passes that
                      fill the bubbles (Qi et al., arXiv 2401.10241)
    zbv               zero bubble with two stages per rank placed in a V (rank r holds stages r and
                      2p-1-r), the same paper's ZB-V

The bubble fraction is computed by running the schedule's own per-rank action order through a small
dependency simulation with unit costs (forward 1, input-gradient 1, weight-gradient 1, a full
backward 2): the share of rank-time spent waiting. For GPipe and 1F1B it equals the textbook
(p - 1) / (m + p - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.errors import LlmkitError


@dataclass(frozen=True)
class ScheduleKind:
    torch_class: str
    default_stages_per_rank: int
    placement: str  # "loop": rank r holds r, r+p, r+2p, ...; "v": r and 2p-1-r

    @property
    def multi(self) -> bool:
        return self.default_stages_per_rank > 1


SCHEDULES = {
    "gpipe": ScheduleKind("ScheduleGPipe", 1, "loop"),
    "1f1b": ScheduleKind("Schedule1F1B", 1, "loop"),
    "interleaved_1f1b": ScheduleKind("ScheduleInterleaved1F1B", 2, "loop"),
    "zero_bubble": ScheduleKind("ScheduleInterleavedZeroBubble", 2, "loop"),
    "zbv": ScheduleKind("ScheduleZBVZeroBubble", 2, "v"),
}
COSTS = {"F": 1, "I": 1, "W": 1, "B": 2}  # a full backward = input gradient + weight gradient


def schedule_kind(name: str) -> ScheduleKind:
    if name not in SCHEDULES:
        raise LlmkitError(f"unknown pipeline schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def stages_per_rank(name: str, requested: int) -> int:
    """The virtual stages each rank holds: the schedule's default for 0, checked otherwise."""
    kind = schedule_kind(name)
    count = requested or kind.default_stages_per_rank
    if not kind.multi and count != 1:
        raise LlmkitError(f"--parallel.pp_schedule {name} runs one stage per rank; use interleaved_1f1b, "
                          "zero_bubble or zbv for --parallel.pp_stages_per_rank > 1")
    if kind.placement == "v" and count != 2:
        raise LlmkitError("--parallel.pp_schedule zbv places exactly two stages per rank (a V)")
    if kind.multi and count < 2:
        raise LlmkitError(f"--parallel.pp_schedule {name} needs at least 2 stages per rank")
    return count


def rank_stages(name: str, pp: int, per_rank: int, rank: int) -> list[int]:
    """The global stage indices rank `rank` of `pp` holds."""
    if schedule_kind(name).placement == "v":
        return [rank, 2 * pp - 1 - rank]
    return [rank + k * pp for k in range(per_rank)]


def single_stage_order(name: str, pp: int, microbatches: int, rank: int) -> list[tuple[str, int, int]]:
    """(kind, stage, micro-batch) in the order GPipe or 1F1B runs them on `rank` (stage = rank)."""
    forwards = [("F", rank, m) for m in range(microbatches)]
    backwards = [("B", rank, m) for m in range(microbatches)]
    if name == "gpipe":
        return forwards + backwards
    warmup = min(microbatches, pp - rank - 1)
    order = forwards[:warmup]
    for m in range(microbatches - warmup):  # steady state: one forward, one backward
        order += [forwards[warmup + m], backwards[m]]
    return order + backwards[microbatches - warmup:]


def torch_order(schedule, rank: int) -> list[tuple[str, int, int]]:
    """A multi-stage torch schedule's own compute order for `rank` (its pipeline_order table)."""
    order = []
    for action in schedule.pipeline_order[rank]:
        if action is None:
            continue
        kind = str(action.computation_type.value if hasattr(action.computation_type, "value") else action.computation_type)
        if kind in COSTS:
            order.append((kind, action.stage_index, action.microbatch_index))
    return order


def bubble_fraction(orders: dict[int, list[tuple[str, int, int]]], n_stages: int) -> float:
    """Share of rank-time idle when each rank runs its actions in order, each as soon as its inputs
    exist: a stage's forward needs the previous stage's forward of that micro-batch; its backward
    (full or input-gradient) needs its own forward and the next stage's backward; a weight-gradient
    pass needs its own input-gradient pass. Unit costs (COSTS); communication is free."""
    done: dict[tuple[str, int, int], float] = {}
    clock = {rank: 0.0 for rank in orders}
    cursor = {rank: 0 for rank in orders}

    def ready(kind: str, stage: int, micro: int) -> float | None:
        needs = []
        if kind == "F" and stage > 0:
            needs.append([("F", stage - 1, micro)])
        if kind in ("B", "I"):
            needs.append([("F", stage, micro)])
            if stage < n_stages - 1:
                needs.append([("B", stage + 1, micro), ("I", stage + 1, micro)])
        if kind == "W":
            needs.append([("I", stage, micro)])
        times = []
        for alternatives in needs:
            found = [done[a] for a in alternatives if a in done]
            if not found:
                return None
            times.append(min(found))
        return max(times, default=0.0)

    remaining = sum(len(o) for o in orders.values())
    while remaining:
        progressed = False
        for rank, order in orders.items():
            while cursor[rank] < len(order):
                action = order[cursor[rank]]
                inputs_at = ready(*action)
                if inputs_at is None:
                    break
                start = max(clock[rank], inputs_at)
                clock[rank] = done[action] = start + COSTS[action[0]]
                cursor[rank] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise LlmkitError("the pipeline schedule's action order deadlocks (an action waits on one never run)")
    makespan = max(clock.values())
    busy = sum(COSTS[kind] for order in orders.values() for kind, _, _ in order)
    return 1.0 - busy / (len(orders) * makespan)
