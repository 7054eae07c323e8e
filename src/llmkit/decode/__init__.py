"""Generation: sampling settings and the one sampler, stop handling, KV caches (paged block pool
and static), the scheduler and the Engine that every caller decodes through. Depends only on
model, tokenizer and checkpoint, so fine-tuning, compression and evaluation import it directly."""

from llmkit.decode.engine import Completion, Engine, EngineConfig
from llmkit.decode.generate import generate_ids
from llmkit.decode.kv_cache import StaticKVCache
from llmkit.decode.sampling_params import SamplingParams

__all__ = ["Completion", "Engine", "EngineConfig", "generate_ids", "StaticKVCache", "SamplingParams"]
