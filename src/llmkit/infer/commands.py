"""`llmkit generate`."""

from __future__ import annotations

from typing import Literal


def generate(checkpoint: str, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             device: str = "cpu", num_beams: int = 1, length_penalty: float = 1.0, draft: str | None = None,
             speculative_k: int = 4, offload: bool = False, compile: bool = False,
             dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto", chat: bool = False,
             system: str | None = None, adapter: str | None = None) -> None:
    """Complete PROMPT with the model in CHECKPOINT and print the completion.

    Under `torchrun --nproc_per_node N -m llmkit generate ...` the model is split tensor-parallel
    across the N processes (N must divide the attention and key/value head counts).

    Args:
        checkpoint: an HF-layout checkpoint directory (config.json, model.safetensors, tokenizer.json).
        prompt: the text to continue.
        max_new_tokens: at most this many tokens are generated (fewer if an end-of-sequence token comes).
        temperature: 0 is greedy decoding; higher values sample more freely.
        top_k: sample only among the k most likely tokens.
        top_p: sample only among the most likely tokens whose probabilities sum to top_p.
        seed: random seed for reproducible sampling.
        device: torch device, e.g. cpu or cuda.
        num_beams: more than 1 runs beam search with this many beams.
        length_penalty: beam search: scores are divided by length ** length_penalty.
        draft: a smaller checkpoint with the same tokenizer, for speculative decoding.
        speculative_k: tokens the draft proposes per round.
        offload: keep block weights on disk and stream each in while it runs (for models larger than memory).
        compile: torch.compile the model first (helps on GPU; slower than eager for CPU decoding).
        dtype: weight precision; auto keeps the checkpoint's own (a bf16 checkpoint runs in bf16).
        chat: send PROMPT as a user turn through the checkpoint's chat template and print only the reply.
        system: with --chat, a system message before the user turn.
        adapter: a fine-tuned adapter directory (any `llmkit finetune` method, or a PEFT LoRA/IA3/prompt
            adapter) to put onto the model.
    """
    import os

    from llmkit.infer.llm import LLM

    llm = LLM.load(checkpoint, device=device, dtype=dtype, offload=offload, compile=compile, adapter=adapter,
                   fast_cpu=True)  # torchrun: TP
    draft_llm = LLM.load(draft, device=device, dtype=dtype) if draft else None
    settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    num_beams=num_beams, length_penalty=length_penalty, draft=draft_llm, speculative_k=speculative_k)
    text = llm.chat(prompt, system, **settings) if chat else llm.generate(prompt, **settings)
    if int(os.environ.get("RANK", "0")) == 0:
        print(text)
    from llmkit.dist.context import shutdown

    shutdown(synchronize=True)
