"""Generated code runs contained: loops time out, memory and processes are limited, writes outside
the working directory and sockets are refused, the environment is stripped; each such program is
scored as failed, and correct programs pass. pass@k is the HumanEval paper's unbiased estimator."""

import itertools
import math
import os
import time

import pytest

from llmkit.eval.sandbox import SandboxLimits, pass_at_k, run_program

LIMITS = SandboxLimits(timeout=3.0, memory_mb=512)


def test_a_correct_program_passes_and_a_wrong_one_fails():
    assert run_program("def f(x):\n    return x + 1\nassert f(1) == 2\n", LIMITS).passed
    failed = run_program("import math\nassert math.gcd(4, 6) == 3\n", LIMITS)
    assert not failed.passed and failed.status == "failed" and "AssertionError" in failed.stderr


def test_an_endless_loop_times_out():
    started = time.perf_counter()
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout=1.0))
    assert result.status == "timeout" and not result.passed
    assert time.perf_counter() - started < 10


def test_allocating_10_gb_fails_instead_of_taking_the_machine():
    result = run_program("block = bytearray(10 * 2**30)\nassert len(block)\n", LIMITS)
    assert not result.passed and "MemoryError" in result.stderr


@pytest.mark.parametrize("source", [
    "import os\nif os.fork() == 0:\n    while True:\n        pass\n",
    "import subprocess\nsubprocess.run(['sleep', '30'])\n",
    "import os\nos.system('sleep 30')\n",
    "import multiprocessing\nmultiprocessing.Process(target=print).start()\n",
])
def test_starting_processes_is_refused(source):
    result = run_program(source, LIMITS)
    assert not result.passed and "not allowed" in result.stderr


def test_writing_outside_its_directory_is_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    for source in (f"open({str(target)!r}, 'w').write('x')\n", f"import os\nos.mkdir({str(tmp_path / 'd')!r})\n",
                   f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n"):
        result = run_program(source, LIMITS)
        assert not result.passed and "outside the working directory" in result.stderr
    assert not target.exists() and tmp_path.is_dir()
    assert run_program("open('here.txt', 'w').write('fine')\nassert open('here.txt').read() == 'fine'\n", LIMITS).passed


def test_sockets_and_native_code_are_refused():
    for source in ("import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)\n",
                   "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9', timeout=1)\n",
                   "import ctypes\nctypes.CDLL(None).fork()\n"):
        result = run_program(source, LIMITS)
        assert not result.passed and "not allowed" in result.stderr, result.stderr


def test_the_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("LLMKIT_SECRET_TOKEN", "hunter2")
    assert run_program("import os\nassert 'LLMKIT_SECRET_TOKEN' not in os.environ\nassert os.getcwd() != "
                       f"{os.getcwd()!r}\n", LIMITS).passed


def test_pass_at_k_is_the_unbiased_estimator():
    """Against its definition: the share of k-subsets of the n samples holding a correct one."""
    for n, c, k in [(5, 0, 1), (5, 2, 1), (5, 2, 3), (6, 1, 6), (10, 3, 4)]:
        outcomes = [True] * c + [False] * (n - c)
        subsets = list(itertools.combinations(range(n), k))
        exact = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert pass_at_k(200, 13, 1) == pytest.approx(13 / 200)
    assert pass_at_k(200, 13, 100) == pytest.approx(1 - math.prod(1 - 100 / i for i in range(188, 201)))
    with pytest.raises(ValueError):
        pass_at_k(1, 1, 10)
