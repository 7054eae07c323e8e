"""Checkpoints in the Hugging Face layout: config translation, per-family key maps, read/write."""

from llmkit.checkpoint.io import (
    load_checkpoint,
    load_config,
    save_checkpoint,
    save_state_dict,
)

__all__ = ["load_checkpoint", "load_config", "save_checkpoint", "save_state_dict"]
