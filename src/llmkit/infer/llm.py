"""`LLM`: the Python entry point for text in, text out.

    from llmkit import LLM
    llm = LLM.load("runs/demo/model")
    llm.generate("The meaning of", max_new_tokens=32, temperature=0.0)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.dist.context import init_distributed
from llmkit.infer.generate import generate_ids
from llmkit.infer.sampling import SamplingConfig
from llmkit.infer.tensor_parallel import launched_world_size, shard_for_inference
from llmkit.tokenizer import Tokenizer
from llmkit.train.config import ParallelConfig


class LLM:
    def __init__(self, model, tokenizer: Tokenizer, stop_ids: set[int] | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.stop_ids = stop_ids if stop_ids is not None else _stop_ids(model.cfg, tokenizer, {})

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str = "cpu", dtype: torch.dtype | None = torch.float32) -> LLM:
        path = Path(checkpoint_dir)
        if launched_world_size() > 1:  # under torchrun: one shard of every block per rank
            device = str(init_distributed(ParallelConfig(tp=launched_world_size(), dp_shard=1), device).device)
            model = load_checkpoint(path, device=device, dtype=dtype)
            shard_for_inference(model, device)
        else:
            model = load_checkpoint(path, device=device, dtype=dtype)
        tokenizer = Tokenizer.from_dir(path)
        gen_file = path / "generation_config.json"
        gen = json.loads(gen_file.read_text()) if gen_file.is_file() else {}
        return cls(model, tokenizer, _stop_ids(model.cfg, tokenizer, gen))

    def generate(self, prompt: str | list[str], max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> str | list[str]:
        """Completion text for one prompt, or a list of completions for a list of prompts."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenizer.encode_batch(prompts)
        sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        outputs = generate_ids(self.model, ids, max_new_tokens, sampling, self.stop_ids, pad)
        texts = [self.tokenizer.decode(out) for out in outputs]
        return texts[0] if isinstance(prompt, str) else texts


def _stop_ids(cfg, tokenizer: Tokenizer, generation_config: dict) -> set[int]:
    """eos ids from generation_config.json, the model config and the tokenizer, plus ChatML's end."""
    ids: set[int] = set()
    for value in (generation_config.get("eos_token_id"), cfg.eos_token_id, tokenizer.eos_id,
                  tokenizer.token_id("<|im_end|>")):
        if value is not None:
            ids.update(value if isinstance(value, list) else [value])
    return ids
