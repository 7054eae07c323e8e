"""Tensor-parallel inference under torchrun gives the same greedy tokens as one process."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.dist, pytest.mark.xdist_group("torchrun")]


def generate(checkpoint, nproc: int) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    args = ["-m", "llmkit", "generate", "--checkpoint", str(checkpoint), "--prompt", "The quick brown fox",
            "--max-new-tokens", "24"]
    result = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_two_process_tensor_parallel_greedy_matches_one_process(tiny_checkpoint):
    single = generate(tiny_checkpoint, 1)
    assert single.strip()
    assert generate(tiny_checkpoint, 2) == single
