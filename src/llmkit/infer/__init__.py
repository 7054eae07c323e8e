"""Inference on top of decoding: the `LLM` text API (loading plain, compressed, streamed or
tensor-parallel checkpoints), layer streaming, and the `generate`/`chat` verbs."""
