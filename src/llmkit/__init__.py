"""llmkit: one small PyTorch codebase for the whole language-model lifecycle.

Heavy modules load on first use, so `import llmkit` and `llmkit --help` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["LLM", "ModelConfig", "load"]


def __getattr__(name: str):
    if name == "LLM":
        from llmkit.infer.llm import LLM

        return LLM
    if name == "ModelConfig":
        from llmkit.model.config import ModelConfig

        return ModelConfig
    if name == "load":
        from llmkit.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
