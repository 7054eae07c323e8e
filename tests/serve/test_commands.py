"""`llmkit serve` as a process (SIGTERM drains in-flight requests, exit 0) and `llmkit chat` with
piped input."""

import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

LLMKIT = [sys.executable, "-m", "llmkit"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_then_exits_zero(tiny_checkpoint, tmp_path):
    port = free_port()
    proc = subprocess.Popen([*LLMKIT, "serve", "--checkpoint", str(tiny_checkpoint), "--port", str(port),
                             "--max-num-seqs", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        results, started = {}, [threading.Event() for _ in range(4)]

        def stream(i):
            body = {"model": tiny_checkpoint.name, "prompt": "The", "max_tokens": 100, "stream": True, "ignore_eos": True}
            with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
                lines = []
                for line in r.iter_lines():
                    if line:
                        lines.append(line)
                        started[i].set()
                results[i] = lines

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        assert all(event.wait(60) for event in started)  # all four are streaming
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert proc.wait(60) == 0
        assert len(results) == 4 and all(lines[-1] == "data: [DONE]" for lines in results.values())
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)  # no longer accepting
    finally:
        if proc.poll() is None:
            proc.kill()


def test_chat_with_piped_input(tiny_checkpoint):
    script = "first question\n/system Be terse.\nsecond\n/reset\n/nonsense\n/exit\nignored after exit\n"
    result = subprocess.run([*LLMKIT, "chat", "--checkpoint", str(tiny_checkpoint), "--max-tokens", "4", "--seed", "0"],
                            input=script, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "system prompt set" in out and "conversation reset" in out and "unknown command /nonsense" in out
    assert "ignored" not in out


def test_chat_session_keeps_history_and_resets(tiny_checkpoint):
    import io

    from llmkit.infer.llm import LLM
    from llmkit.decode.sampling_params import SamplingParams
    from llmkit.serve.chat import ChatSession, engine_for_chat

    llm = LLM.load(tiny_checkpoint)
    session = ChatSession(engine_for_chat(llm), SamplingParams(max_tokens=3, temperature=0), system="sys")
    out = io.StringIO()
    session.handle("hello", out)
    session.handle("again", out)
    assert [m["role"] for m in session.messages()] == ["system", "user", "assistant", "user", "assistant"]
    session.handle("/reset", out)
    assert session.messages() == [{"role": "system", "content": "sys"}]
