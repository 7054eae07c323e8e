"""Training that outlives its processes: two torchrun launchers playing two nodes (HSDP over
torchrun's c10d rendezvous on loopback) give one process's losses; a rank killed with SIGKILL at
any phase of a step (forward, backward, optimizer step, in the middle of a checkpoint save) under
`--max-restarts` restarts the group from the newest complete checkpoint with every later loss
bit-identical to an uninterrupted run; a stopped rank ends in a timeout error that names it."""

import json
import os
import socket
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.dist, pytest.mark.slow, pytest.mark.xdist_group("torchrun")]
COMMON = ["--model", "tiny-llama", "--batch.seq_len", "32", "--schedule.kind", "constant", "--schedule.warmup_steps", "1",
          "--no-progress"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def pretrain(data, out, *flags, steps=8, batch=2):
    return ["-m", "llmkit", "pretrain", "--data", str(data), "--out", str(out), "--max-steps", str(steps),
            "--batch.batch_size", str(batch), *COMMON, *flags]


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def uninterrupted(prepared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node", "2",
                           *pretrain(prepared_data, out, "--save-every", "2")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return losses(out)


@pytest.mark.parametrize("phase,step,flags", [("forward", 5, []), ("backward", 5, []), ("optimizer", 5, []),
                                              ("checkpoint", 6, []), ("checkpoint", 6, ["--async-save"])])
def test_a_killed_rank_restarts_from_the_newest_complete_checkpoint(phase, step, flags, prepared_data, uninterrupted,
                                                                   tmp_path):
    # Each restart attempt has its own store prefix (llmkit.dist.context), so a restarted group never
    # reads a killed attempt's peer address; should a connection still fail, the 30 s process-group
    # timeout turns that into one more restart instead of a 10-minute wait.
    out = tmp_path / "run"
    env = os.environ | {"LLMKIT_FAULT": f"1:{step}:{phase}"}
    done = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", "--max-restarts", "6",
                           *pretrain(prepared_data, out, "--save-every", "2", "--resume", "auto", "--parallel.timeout_s", "30",
                                     *flags)],
                          capture_output=True, text=True, timeout=900, env=env)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert f"[fault] rank 1: SIGKILL at step {step}, {phase}" in log
    # killed during step 5 (or while saving step 6): step 4 is the newest checkpoint that is whole
    assert "resumed from" in log and "step-000004" in log.split("resumed from")[1].splitlines()[0]
    assert losses(out) == uninterrupted  # FSDP on CPU is deterministic: bit-identical
    assert (out / "checkpoints" / "step-000008").is_dir() and (out / "final").is_dir()


def test_a_stopped_rank_ends_in_a_timeout_that_names_it(prepared_data, tmp_path):
    env = os.environ | {"LLMKIT_FAULT": "1:3:forward:STOP"}
    done = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node", "2",
                           *pretrain(prepared_data, tmp_path / "run", "--parallel.timeout_s", "5", steps=4)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0
    assert "a collective at step 3 waited past the process-group timeout (5 s, --parallel.timeout_s): rank 1 never " \
           "reached it" in done.stderr, done.stderr[-3000:]


def test_two_launchers_as_two_nodes_train_like_one_process(prepared_data, tmp_path):
    """HSDP: dp_shard 2 inside each 'node' (consecutive ranks), dp_replicate 2 across them."""
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen([*TORCHRUN, "--nnodes", "2", "--nproc_per_node", "2", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes",
                               *pretrain(prepared_data, tmp_path / "hsdp", "--parallel.dp_replicate", "2",
                                         "--parallel.dp_shard", "2", steps=4, batch=1)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    single = subprocess.run([sys.executable, *pretrain(prepared_data, tmp_path / "single", steps=4, batch=4)],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    assert max(abs(a - b) for a, b in zip(losses(tmp_path / "hsdp"), losses(tmp_path / "single"))) <= 1e-5
