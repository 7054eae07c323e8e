"""Serving: the OpenAI-compatible HTTP server and the terminal chat, on the inference engine."""
