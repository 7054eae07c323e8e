"""`LLM`: the Python entry point for text in, text out.

    from llmkit import LLM
    llm = LLM.load("runs/demo/model")
    llm.generate("The meaning of", max_new_tokens=32, temperature=0.0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.compress.checkpoint import is_compressed, load_compressed
from llmkit.errors import LlmkitError
from llmkit.fileio import read_json_object
from llmkit.infer.beam_search import beam_search
from llmkit.infer.generate import generate_ids
from llmkit.infer.offload import load_streaming
from llmkit.infer.sampling import SamplingConfig
from llmkit.infer.speculative import speculative_generate
from llmkit.infer.tensor_parallel import (
    inference_context,
    launched_world_size,
    shard_for_inference,
)
from llmkit.tokenizer import Tokenizer


class LLM:
    def __init__(self, model, tokenizer: Tokenizer, stop_ids: set[int] | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.stop_ids = stop_ids if stop_ids is not None else _stop_ids(model.cfg, tokenizer, {})

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str = "cpu", dtype: torch.dtype | None = torch.float32,
             offload: bool = False, compile: bool = False) -> LLM:
        """offload: keep block weights on disk and stream each in while it runs (llmkit.infer.offload).
        compile: torch.compile the model (dynamic shapes, so the growing KV length does not recompile);
        worth it on GPU, measured slower than eager for CPU decoding (docs/benchmarks.md)."""
        path = Path(checkpoint_dir)
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
        if compile:
            model = torch.compile(model, dynamic=True)
        tokenizer = Tokenizer.from_dir(path)
        gen_file = path / "generation_config.json"
        gen = read_json_object(gen_file) if gen_file.is_file() else {}
        return cls(model, tokenizer, _stop_ids(model.cfg, tokenizer, gen))

    def generate(self, prompt: str | list[str], max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 num_beams: int = 1, length_penalty: float = 1.0, draft: LLM | None = None,
                 speculative_k: int = 4) -> str | list[str]:
        """Completion text for one prompt, or a list of completions for a list of prompts.
        num_beams > 1: beam search; draft: speculative decoding with that (smaller) model."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenizer.encode_batch(prompts)
        sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        if num_beams > 1:
            outputs = [beam_search(self.model, p, num_beams, max_new_tokens, length_penalty,
                                   stop_ids=self.stop_ids)[0].token_ids for p in ids]
        elif draft is not None:
            outputs = [speculative_generate(self.model, draft.model, p, max_new_tokens, speculative_k, sampling,
                                            self.stop_ids)[0] for p in ids]
        else:
            outputs = generate_ids(self.model, ids, max_new_tokens, sampling, self.stop_ids, pad)
        texts = [self.tokenizer.decode(out) for out in outputs]
        return texts[0] if isinstance(prompt, str) else texts


def _stop_ids(cfg, tokenizer: Tokenizer, generation_config: dict) -> set[int]:
    """eos ids from generation_config.json, the model config and the tokenizer, plus ChatML's end."""
    ids: set[int] = set()
    for value in (generation_config.get("eos_token_id"), cfg.eos_token_id, tokenizer.eos_id,
                  tokenizer.token_id("<|im_end|>")):
        values = value if isinstance(value, list) else [value]
        ids.update(v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    return ids
