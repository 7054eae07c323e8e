"""Inference: static KV cache, sampling, generation, and the `LLM` text API."""

from llmkit.infer.generate import generate_ids
from llmkit.infer.kv_cache import StaticKVCache
from llmkit.infer.sampling import SamplingConfig, sample_next

__all__ = ["generate_ids", "StaticKVCache", "SamplingConfig", "sample_next"]
