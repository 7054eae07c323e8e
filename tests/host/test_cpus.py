"""Thread count from the CPUs a process may use: affinity, cgroup quota, torchrun's local ranks."""

import os

import torch

from llmkit.host import cpus as host_cpus
from llmkit.cli import main


def test_affinity_quota_and_local_ranks_bound_the_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(host_cpus, "_cgroup_quota", lambda: None)
    assert host_cpus.available_cpus() == 8
    monkeypatch.setattr(host_cpus, "_cgroup_quota", lambda: 2.5)  # cpu.max "250000 100000"
    assert host_cpus.available_cpus() == 2
    monkeypatch.setattr(host_cpus, "_cgroup_quota", lambda: None)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert host_cpus.available_cpus() == 2


def test_threads_flag_overrides(monkeypatch, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["models", "--threads", "3"]) == 0
        assert torch.get_num_threads() == 3
        assert main(["models", "--threads", "x"]) == 2 and "--threads" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
