"""Tokenizers: byte-level BPE training, loading HF tokenizer.json, chat templates."""

from llmkit.tokenizer.tokenizer import Tokenizer
from llmkit.tokenizer.train import train_bpe, train_tokenizer

__all__ = ["Tokenizer", "train_bpe", "train_tokenizer"]
