"""`LLM`: the Python entry point for text in, text out.

    from llmkit import LLM
    llm = LLM.load("runs/demo/model")
    llm.generate("The meaning of", max_new_tokens=32, temperature=0.0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.checkpoint.io import resolve_dtype
from llmkit.compress.checkpoint import is_compressed, load_compressed
from llmkit.decode.beam_search import beam_search
from llmkit.decode.chat import chat_prompt_ids, user_turn
from llmkit.decode.generate import generate_ids
from llmkit.decode.sampling_params import SamplingParams
from llmkit.decode.speculative import speculative_generate
from llmkit.decode.stops import checkpoint_stop_ids
from llmkit.errors import LlmkitError
from llmkit.fileio import read_json_object
from llmkit.finetune.peft import load_adapter
from llmkit.infer.fuse import prepare_for_inference
from llmkit.infer.offload import load_streaming
from llmkit.infer.tensor_parallel import (
    inference_context,
    launched_world_size,
    shard_for_inference,
)
from llmkit.tokenizer import Tokenizer


class LLM:
    def __init__(self, model, tokenizer: Tokenizer, stop_ids: set[int] | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.stop_ids = stop_ids if stop_ids is not None else checkpoint_stop_ids(model.cfg, tokenizer)

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = "auto",
             offload: bool = False, compile: bool = False, adapter: str | Path | None = None,
             fast_cpu: bool = False) -> LLM:
        """dtype: "auto" (or None) keeps the checkpoint's own precision: a bf16 checkpoint stays bf16,
        never silently doubled to fp32; "bf16", "fp16", "fp32" or a torch.dtype converts.
        offload: keep block weights on disk and stream each in while it runs (llmkit.infer.offload).
        compile: torch.compile the model (dynamic shapes, so the growing KV length does not recompile);
        worth it on GPU, measured slower than eager for CPU decoding (docs/benchmarks.md).
        adapter: a fine-tuned adapter directory of any method (LoRA, DoRA, (IA)^3, bottleneck, prefix,
        soft prompt; llmkit.finetune.peft) put onto the model before anything runs.
        fast_cpu: in one process without adapters, fuse the q/k/v and gate/up projections into one
        matmul each (llmkit.infer.fuse), and on the CPU keep a bf16 model's weights in bf16 behind
        fp32 activations (llmkit.compress.bf16_weights). generate, serve and chat turn it on; off by
        default because the fused model's modules no longer have the checkpoint's names (what
        evaluation and compression swap by), and for multi-LoRA serving, whose adapter layers wrap
        the plain projections."""
        path, dtype = Path(checkpoint_dir), resolve_dtype(dtype)
        if is_compressed(path):  # written by `llmkit compress quantize | lowrank`
            if offload or launched_world_size() > 1:
                raise LlmkitError("compressed checkpoints load in one process without --offload")
            model = load_compressed(path, device=device)
        elif offload:
            model, _ = load_streaming(path, device=device, dtype=dtype)
        elif launched_world_size() > 1:  # under torchrun: one shard of every block per rank
            ctx = inference_context(device)
            model = load_checkpoint(path, device=ctx.device, dtype=dtype)
            shard_for_inference(model, ctx)
        else:
            model = load_checkpoint(path, device=device, dtype=dtype)
        if adapter is not None:
            if offload or launched_world_size() > 1:
                raise LlmkitError("--adapter loads in one process without --offload")
            load_adapter(model, adapter)
        if fast_cpu and adapter is None and not offload and launched_world_size() == 1:
            prepare_for_inference(model)
        if compile:
            model = torch.compile(model, dynamic=True)
        tokenizer = Tokenizer.from_dir(path)
        gen_file = path / "generation_config.json"
        gen = read_json_object(gen_file) if gen_file.is_file() else {}  # a .gguf file: its eos is in the config
        return cls(model, tokenizer, checkpoint_stop_ids(model.cfg, tokenizer, gen))

    def generate(self, prompt: str | list[str], max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 num_beams: int = 1, length_penalty: float = 1.0, draft: LLM | None = None,
                 speculative_k: int = 4) -> str | list[str]:
        """Completion text for one prompt, or a list of completions for a list of prompts.
        num_beams > 1: beam search; draft: speculative decoding with that (smaller) model."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        texts = self.generate_ids(self.tokenizer.encode_batch(prompts), max_new_tokens, temperature, top_k, top_p,
                                  seed, num_beams, length_penalty, draft, speculative_k)
        return texts[0] if isinstance(prompt, str) else texts

    def chat(self, message: str, system: str | None = None, **generate_kw) -> str:
        """The reply to one user turn, through the checkpoint's own chat template (only the reply)."""
        ids = chat_prompt_ids(self.tokenizer, user_turn(message, system))
        return self.generate_ids([ids], **generate_kw)[0].strip()

    def generate_ids(self, ids: list[list[int]], max_new_tokens: int = 64, temperature: float = 0.0,
                     top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                     num_beams: int = 1, length_penalty: float = 1.0, draft: LLM | None = None,
                     speculative_k: int = 4) -> list[str]:
        """Completion texts for prompts given as token ids."""
        sampling = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        if num_beams > 1:
            outputs = [beam_search(self.model, p, num_beams, max_new_tokens, length_penalty,
                                   stop_ids=self.stop_ids)[0].token_ids for p in ids]
        elif draft is not None:
            outputs = [speculative_generate(self.model, draft.model, p, max_new_tokens, speculative_k, sampling,
                                            self.stop_ids)[0] for p in ids]
        else:
            outputs = generate_ids(self.model, ids, max_new_tokens, sampling, self.stop_ids)
        return [self.tokenizer.decode(out) for out in outputs]


