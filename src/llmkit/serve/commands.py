"""`llmkit serve` and `llmkit chat`."""

from __future__ import annotations


def serve(checkpoint: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          max_queue: int = 256, max_model_len: int | None = None, model_name: str | None = None,
          kv_cache_mib: float = 512.0, max_num_seqs: int = 64, graceful_timeout: float = 30.0,
          device: str = "cpu", max_request_bytes: int = 4 * 2**20, allowed_hosts: list[str] | None = None,
          protect_docs: bool = False, dtype: str = "auto", adapter: str | None = None,
          allowed_origins: list[str] | None = None, lora: list[str] | None = None, max_loras: int = 0,
          max_lora_rank: int = 16) -> None:
    """Serve CHECKPOINT over an OpenAI-compatible HTTP API (completions, chat, models, health, metrics).

    Args:
        checkpoint: an HF-layout checkpoint directory with its tokenizer (and chat template for chat).
        host: address to bind; 127.0.0.1 (this machine only) unless you mean to expose it.
        port: TCP port.
        api_key: require `Authorization: Bearer KEY`; defaults to the LLMKIT_API_KEY environment variable.
        max_queue: sequences (prompts x n) in flight beyond which the server answers 429 with Retry-After.
        max_model_len: context length (prompt + output); defaults to the model's.
        model_name: the model id clients send; defaults to the checkpoint directory's name.
        kv_cache_mib: memory for the paged KV cache.
        max_num_seqs: requests computed together in one batch.
        graceful_timeout: on SIGTERM, seconds in-flight requests may take to finish; later ones get an error.
        device: torch device, e.g. cpu or cuda.
        max_request_bytes: larger request bodies get 413 before they are read.
        allowed_hosts: Host header names accepted when no API key is set (default: 127.0.0.1, localhost,
            ::1; '*' allows any). Guards a loopback server against DNS rebinding.
        protect_docs: /metrics and /openapi.json need the API key too.
        allowed_origins: origins browsers may call the API from (CORS), e.g. http://localhost:3000;
            '*' allows any. Off by default: no CORS headers are sent.
        lora: LoRA adapters served beside the base model, NAME=DIR each (PEFT layout); a request
            whose model is NAME uses it, and requests for different adapters share batches.
        max_loras: adapter slots (at least one per --lora); free slots take adapters loaded at run
            time with POST /v1/load_lora_adapter.
        max_lora_rank: the largest adapter rank a slot holds.
        dtype: weight precision; auto keeps the checkpoint's own (a bf16 checkpoint runs in bf16).
        adapter: a fine-tuned adapter directory (any `llmkit finetune` method) served on top of CHECKPOINT.
    """
    from llmkit.decode.engine import EngineConfig
    from llmkit.serve.server import build_state, run_server

    from llmkit.serve.guard import LOOPBACK_HOSTS

    hosts = () if allowed_hosts and "*" in allowed_hosts else tuple(allowed_hosts or LOOPBACK_HOSTS)
    if hosts and host not in ("0.0.0.0", "::"):  # the address served on is a name clients will use
        hosts += (host,)
    state = build_state(checkpoint, model_name=model_name, api_key=api_key, max_queue=max_queue,
                        max_model_len=max_model_len, device=device, dtype=dtype, adapter=adapter,
                        engine_config=EngineConfig(kv_cache_mib=kv_cache_mib, max_num_seqs=max_num_seqs),
                        max_request_bytes=max_request_bytes, allowed_hosts=hosts, protect_docs=protect_docs,
                        allowed_origins=tuple(allowed_origins or ()), loras=_named_dirs(lora), max_loras=max_loras,
                        max_lora_rank=max_lora_rank)
    print(f"serving {state.model_name!r} on http://{host}:{port}/v1 "
          f"({'API key required' if state.api_key else 'no API key'})", flush=True)
    run_server(state, host=host, port=port, graceful_timeout=graceful_timeout)


def chat(checkpoint: str, system: str | None = None, max_tokens: int = 256, temperature: float = 0.7,
         top_p: float = 0.95, seed: int | None = None, device: str = "cpu", dtype: str = "auto",
         adapter: str | None = None) -> None:
    """Chat with CHECKPOINT in the terminal (streamed). Type /reset, /system TEXT or /exit.
    Piped input works too: each line is one user turn.

    Args:
        checkpoint: an HF-layout checkpoint directory with a tokenizer that has a chat template.
        system: an initial system prompt.
        max_tokens: at most this many tokens per reply.
        temperature: 0 is greedy; higher samples more freely.
        top_p: nucleus sampling mass.
        seed: random seed for reproducible replies.
        device: torch device, e.g. cpu or cuda.
        dtype: weight precision; auto keeps the checkpoint's own (a bf16 checkpoint runs in bf16).
        adapter: a fine-tuned adapter directory (any `llmkit finetune` method) to chat with on top of CHECKPOINT.
    """
    from llmkit.infer.llm import LLM
    from llmkit.decode.sampling_params import SamplingParams
    from llmkit.serve.chat import ChatSession, engine_for_chat, run_chat

    llm = LLM.load(checkpoint, device=device, dtype=dtype, adapter=adapter, fast_cpu=True)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    run_chat(ChatSession(engine_for_chat(llm), params, system))


def _named_dirs(pairs: list[str] | None) -> dict[str, str]:
    """--lora NAME=DIR values as {NAME: DIR}."""
    from llmkit.errors import LlmkitError

    named = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise LlmkitError(f"--lora takes NAME=DIR, got {pair!r}")
        named[name] = path
    return named
