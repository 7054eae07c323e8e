"""`llmkit tokenizer train`."""

from __future__ import annotations


def train(input: list[str], out: str, vocab_size: int = 8192, min_frequency: int = 2, overwrite: bool = False) -> None:
    """Train a byte-level BPE tokenizer (with bos/eos/pad and ChatML tokens) on text files.

    Writes tokenizer.json and tokenizer_config.json (with a chat template) into OUT; both load
    in `transformers.AutoTokenizer.from_pretrained(OUT)`.

    Args:
        input: text files to learn merges from (streamed; any size).
        out: output directory.
        vocab_size: vocabulary size including the special tokens.
        min_frequency: pairs seen fewer times are never merged.
        overwrite: write into a non-empty OUT that is not a tokenizer directory (only llmkit's files are replaced).
    """
    from llmkit.tokenizer.train import train_tokenizer

    tokenizer = train_tokenizer(input, vocab_size, out, min_frequency, overwrite=overwrite)
    print(f"trained a {tokenizer.vocab_size}-token BPE tokenizer -> {out}")
