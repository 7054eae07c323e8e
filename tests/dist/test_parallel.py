"""Every parallel mode under `torchrun --nproc_per_node N` on CPU (gloo) against one process on the
same global batch: the same loss at every step (within 1e-4; fp32 reductions run in another order),
and a final checkpoint in the single-process layout."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmkit.checkpoint import load_checkpoint

# One torchrun test at a time (they start 2-4 processes each on a 2-core machine).
pytestmark = [pytest.mark.dist, pytest.mark.xdist_group("torchrun")]
COMMON = ["--model", "tiny-llama", "--batch.seq_len", "32", "--schedule.kind", "constant", "--schedule.warmup_steps", "1",
          "--no-progress"]  # constant LR: a 4-step run follows the first 4 steps of an 8-step one
GLOBAL_BATCH = 4


def run(data: Path, out: Path, nproc: int, *flags: str, steps: int = 4) -> list[float]:
    per_rank = GLOBAL_BATCH // _dp_size(nproc, flags)
    args = ["-m", "llmkit", "pretrain", "--data", str(data), "--out", str(out), "--max-steps", str(steps),
            "--batch.batch_size", str(per_rank), *COMMON, *flags]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _dp_size(nproc: int, flags: tuple) -> int:
    degree = lambda name: int(flags[flags.index(name) + 1]) if name in flags else 1
    return nproc // (degree("--parallel.tp") * degree("--parallel.pp"))


@pytest.fixture(scope="module")
def reference(prepared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    return run(prepared_data, out, 1, steps=8), out


MODES = {
    "ddp": (2, ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "1"]),
    "ddp_zero1": (2, ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "1", "--parallel.zero1"]),
    "fsdp": (2, []),
    "fsdp_zero2": (2, ["--parallel.no-reshard-after-forward"]),
    "tp": (2, ["--parallel.tp", "2", "--parallel.dp_shard", "1"]),
    "fsdp_x_tp": (4, ["--parallel.tp", "2", "--parallel.dp_shard", "2"]),
    "pp_1f1b": (2, ["--parallel.pp", "2", "--parallel.dp_shard", "1", "--parallel.pp_schedule", "1f1b",
                    "--parallel.pp_microbatches", "4"]),
}
PIPELINE = ["--parallel.pp", "2", "--parallel.pp_microbatches", "2"]
# The rest, and the longer runs (4 and 8 processes, two stages per rank): the slow suite (make
# test-all, CI), so that `make test` stays under its 10 minutes.
SLOW_MODES = {
    "tp_sequence_parallel": (2, ["--parallel.tp", "2", "--parallel.dp_shard", "1", "--parallel.sequence_parallel"]),
    "hsdp": (4, ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "2"]),  # also: two launchers as two nodes
    "pp_gpipe": (2, ["--parallel.pp", "2", "--parallel.dp_shard", "1", "--parallel.pp_schedule", "gpipe",
                     "--parallel.pp_microbatches", "2"]),
    "pp_interleaved_1f1b": (2, [*PIPELINE, "--parallel.dp_shard", "1", "--parallel.pp_schedule", "interleaved_1f1b"]),
    "pp_zero_bubble": (2, [*PIPELINE, "--parallel.dp_shard", "1", "--parallel.pp_schedule", "zero_bubble"]),
    "pp_zbv": (2, [*PIPELINE, "--parallel.dp_shard", "1", "--parallel.pp_schedule", "zbv"]),
    "pp_x_ddp": (4, [*PIPELINE, "--parallel.dp_replicate", "2", "--parallel.dp_shard", "1"]),
    "pp_x_fsdp": (4, [*PIPELINE, "--parallel.dp_shard", "2"]),
    "pp_x_tp": (4, [*PIPELINE, "--parallel.tp", "2", "--parallel.dp_shard", "1"]),
    # 3-D on one mesh: 2 pipeline stages x 2 FSDP shards x 2 tensor-parallel ranks, 8 processes
    "pp_x_fsdp_x_tp": (8, [*PIPELINE, "--parallel.tp", "2", "--parallel.dp_shard", "2"]),
    "pp_interleaved_x_fsdp_x_tp": (8, [*PIPELINE, "--parallel.tp", "2", "--parallel.dp_shard", "2",
                                       "--parallel.pp_schedule", "interleaved_1f1b"]),
}


@pytest.mark.parametrize("mode", [*MODES, *(pytest.param(m, marks=pytest.mark.slow) for m in SLOW_MODES)])
def test_parallel_mode_matches_one_process(mode, prepared_data, reference, tmp_path):
    nproc, flags = (MODES | SLOW_MODES)[mode]
    losses = run(prepared_data, tmp_path / mode, nproc, *flags)
    single, single_out = reference
    assert max(abs(a - b) for a, b in zip(losses, single[:4])) <= 1e-4, (losses, single[:4])
    final = load_checkpoint(tmp_path / mode / "final")  # saved in the one-process layout
    assert set(final.state_dict()) == set(load_checkpoint(single_out / "final").state_dict())


@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_fsdp_checkpoint_resumes_on_another_world_size(first, second, prepared_data, reference, tmp_path):
    out = tmp_path / "run"
    run(prepared_data, out, first, "--save-every", "4", steps=8)
    shutil.rmtree(out / "checkpoints" / "step-000008")
    resumed = run(prepared_data, out, second, "--resume", "auto", steps=8)
    assert max(abs(a - b) for a, b in zip(resumed, reference[0])) <= 1e-5, (resumed, reference[0])


@pytest.mark.slow  # an 8-process run and a resumed one: a minute
def test_3d_checkpoint_resumes_in_one_process(prepared_data, reference, tmp_path):
    """Optimizer states are saved by parameter name: a pipeline x FSDP x TP checkpoint (each rank
    grouping its own parameters) resumes where one process groups them all differently."""
    out = tmp_path / "run"
    flags = SLOW_MODES["pp_interleaved_x_fsdp_x_tp"][1]
    run(prepared_data, out, 8, *flags, "--save-every", "4", steps=4)
    resumed = run(prepared_data, out, 1, "--resume", "auto", steps=8)
    assert max(abs(a - b) for a, b in zip(resumed, reference[0])) <= 1e-5, (resumed, reference[0])


def test_cpu_offload_is_configured_and_refused_on_cpu(prepared_data, tmp_path):
    from torch.distributed.fsdp import CPUOffloadPolicy

    from llmkit.dist.data_parallel import fsdp_options
    from llmkit.dist.config import ParallelConfig

    assert isinstance(fsdp_options(ParallelConfig(cpu_offload=True), mesh=None)["offload_policy"], CPUOffloadPolicy)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "llmkit", "pretrain", "--data", str(prepared_data), "--out", str(tmp_path / "o"),
                             "--max-steps", "1", "--parallel.cpu_offload", *COMMON],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "needs an accelerator" in result.stderr


@pytest.mark.slow  # a torchrun run: keeps make test under its 10 minutes
def test_the_command_plan_prints_runs(prepared_data, tmp_path, capsys):
    """`llmkit plan` for two devices picks DDP for a tiny model and prints its torchrun command; run as printed."""
    from llmkit.cli import main

    assert main(["plan", "--model", "tiny-llama", "--gpus-per-node", "2", "--seq-len", "32", "--micro-batch", "2",
                 "--precision", "fp32", "--tokens", "1e6"]) == 0
    command = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("run it: ")).split()[2:]
    assert command[0] == "torchrun" and "--parallel.dp_replicate" in command
    command = [sys.executable, "-m", "torch.distributed.run", *command[1:]]
    command = [str(prepared_data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    result = subprocess.run([*command, "--max-steps", "2", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("zero", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_zero_stage_memory_per_rank_matches_the_planner(zero, tmp_path):
    """Optimizer-state and gradient bytes each rank holds after a step, against `llmkit plan`'s
    formulas (ZeRO-1: states halved, gradients whole; ZeRO-2/3: both halved), within 15%."""
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "tests.dist.zero_memory_worker", str(zero), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank*.json"))]
    assert len(rows) == 2
    for row in rows:
        for kind in ("optimizer", "gradients"):
            assert abs(row[kind] / row[f"predicted_{kind}"] - 1) <= 0.15, (zero, row)


@pytest.mark.slow  # two torchrun runs: half a minute
def test_zero1_checkpoint_resumes_exactly(prepared_data, reference, tmp_path):
    out, flags = tmp_path / "run", ["--parallel.dp_replicate", "2", "--parallel.dp_shard", "1", "--parallel.zero1"]
    run(prepared_data, out, 2, *flags, "--save-every", "4", steps=8)
    assert (out / "checkpoints" / "step-000004" / "optim-zero1.pt").is_file()
    shutil.rmtree(out / "checkpoints" / "step-000008")
    resumed = run(prepared_data, out, 2, *flags, "--resume", "auto", steps=8)
    assert max(abs(a - b) for a, b in zip(resumed, reference[0])) <= 1e-4, (resumed, reference[0])


@pytest.mark.slow  # two torchrun runs: half a minute
def test_async_checkpoint_saves_are_whole_and_resume(prepared_data, reference, tmp_path):
    """--async-save writes the shards in the background; each checkpoint still appears only whole,
    and the loop's waiting time is reported."""
    out = tmp_path / "run"
    losses = run(prepared_data, out, 2, "--save-every", "2", "--async-save", steps=8)
    assert max(abs(a - b) for a, b in zip(losses, reference[0])) <= 1e-4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000006", "step-000008"]
    assert json.loads((out / "summary.json").read_text())["checkpoint_wait_s"] > 0
    shutil.rmtree(out / "checkpoints" / "step-000008")
    resumed = run(prepared_data, out, 2, "--resume", "auto", steps=8)
    assert max(abs(a - b) for a, b in zip(resumed, reference[0])) <= 1e-4


@pytest.mark.slow  # four runs of a prefix decoder: a minute
@pytest.mark.parametrize("objective", ["prefix_lm", "mlm"])
def test_pipeline_trains_other_objectives_like_one_process(objective, prepared_data, tmp_path):
    """A prefix decoder's stages pass each row's prefix length along with the hidden states."""
    flags = ["--objective", objective, "--model", "tiny-glm"]
    single = run(prepared_data, tmp_path / "single", 1, *flags, steps=3)
    piped = run(prepared_data, tmp_path / "pp", 2, *flags, *PIPELINE, "--parallel.dp_shard", "1", steps=3)
    assert max(abs(a - b) for a, b in zip(piped, single)) <= 1e-4, (piped, single)

