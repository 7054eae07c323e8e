"""Evaluation: perplexity (and, later, benchmarks and prompting)."""
