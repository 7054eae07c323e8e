"""`data prepare --executor ray --ray-address` on an existing multi-node Ray cluster: a head and a
second worker node started by the test on loopback (`ray start`); a worker process killed in the
middle of a unit (after writing its output, before publishing it) is retried by Ray, and the output
is byte-identical to an uninterrupted local run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.data.corpus_files import tree_bytes

pytest.importorskip("ray")
pytest.importorskip("fastwarc")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
RAY = str(Path(sys.executable).parent / "ray")
# loopback test cluster: no token (Ray >= 2.5x enables token auth by default), no usage reporting
ENV = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A head and a worker node, each `ray start --block` in its own process group, stopped by
    killing those groups: `ray stop` would also kill any other Ray on the machine (an earlier test's
    in-process Ray, whose driver then dies with it)."""
    address = f"127.0.0.1:{_port()}"
    common = ["--num-cpus", "1", "--block"]
    nodes = [subprocess.Popen([RAY, "start", "--head", "--port", address.split(":")[1], "--include-dashboard", "false",
                               "--disable-usage-stats", *common], env=ENV, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(address, 1)
        nodes.append(subprocess.Popen([RAY, "start", "--address", address, *common], env=ENV, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for(address, 2)
        yield address
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def _wait_for(address: str, nodes: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run([RAY, "status", "--address", address], env=ENV, capture_output=True, text=True)
        active = status.stdout.split("Active:")[-1].split("Pending:")[0] if "Active:" in status.stdout else ""
        if status.returncode == 0 and active.count("node_") >= nodes:
            return
        time.sleep(1)
    raise TimeoutError(f"the Ray cluster at {address} did not reach {nodes} nodes")


def test_a_killed_worker_is_retried_without_losing_or_duplicating_documents(cluster, tmp_path):
    from llmkit.data.synthetic_web import write_crawl

    inputs = tmp_path / "crawl"
    inputs.mkdir()
    for i in range(4):
        write_crawl(inputs / f"part-{i}.warc.gz", 25, seed=i)
    args = [sys.executable, "-m", "llmkit", "data", "prepare", "--input", str(inputs), "--steps",
            "html_extract,url_filter,normalize,exact_dedup,pii", "--no-progress"]
    subprocess.run([*args, "--out", str(tmp_path / "local")], env=ENV, check=True, capture_output=True, timeout=300)
    done = subprocess.run([*args, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", cluster,
                           "--keep-work"], env=ENV | {"LLMKIT_DATA_FAULT": "1:2"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ray" / ".work" / "fault-1-2.fired").exists()  # the worker of unit 2, stage 1 died
    shutil.rmtree(tmp_path / "ray" / ".work")
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
