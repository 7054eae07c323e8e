"""`llmkit tokenizer train`."""

from __future__ import annotations


def train(input: list[str], out: str, vocab_size: int = 8192, min_frequency: int = 2) -> None:
    """Train a byte-level BPE tokenizer (with bos/eos/pad and ChatML tokens) on text files.

    Writes tokenizer.json and tokenizer_config.json (with a chat template) into OUT; both load
    in `transformers.AutoTokenizer.from_pretrained(OUT)`.

    Args:
        input: text files to learn merges from (streamed; any size).
        out: output directory.
        vocab_size: vocabulary size including the special tokens.
        min_frequency: pairs seen fewer times are never merged.
    """
    from llmkit.fileio import atomic_dir
    from llmkit.tokenizer.train import iter_text_files, train_bpe

    tokenizer = train_bpe(iter_text_files(input), vocab_size, min_frequency)
    with atomic_dir(out) as tmp:
        tokenizer.save(tmp)
    print(f"trained a {tokenizer.vocab_size}-token BPE tokenizer -> {out}")
