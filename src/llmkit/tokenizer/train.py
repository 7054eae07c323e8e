"""Byte-level BPE training (GPT-2's scheme, arXiv 1508.07909 + byte fallback by construction)
with the `tokenizers` library, from a streaming iterator so corpora need not fit in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, check_output
from llmkit.tokenizer.chat import CHATML_TEMPLATE
from llmkit.tokenizer.tokenizer import Tokenizer

BOS, EOS, PAD, MASK = "<|bos|>", "<|endoftext|>", "<|pad|>", "<|mask|>"
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
# span-corruption sentinels (T5's extra ids) and the [MASK] of MLM and blank infilling
SENTINELS = [f"<|sentinel_{i}|>" for i in range(16)]
SPECIAL_TOKENS = [EOS, BOS, PAD, *CHAT_TOKENS, MASK, *SENTINELS]


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2,
              show_progress: bool = True, max_length: int = 2048) -> Tokenizer:
    """Train on an iterator of texts; ids 0..4 are the special tokens, then the 256 byte symbols."""
    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise LlmkitError(f"--vocab-size {vocab_size} is too small: byte-level BPE needs at least "
                          f"{len(SPECIAL_TOKENS) + 256} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "model_max_length": max_length, "clean_up_tokenization_spaces": False, "chat_template": CHATML_TEMPLATE,
        "mask_token": MASK, "additional_special_tokens": [*CHAT_TOKENS, *SENTINELS],
    }
    return Tokenizer(backend, config)


def iter_text_files(files: list[str | Path], chunk_chars: int = 1 << 16) -> Iterator[str]:
    """Stream files as text chunks cut at line ends (bounded memory for any file size).
    Every file is checked before the first chunk, so a typo fails at once."""
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise LlmkitError(f"input file {', '.join(missing)} does not exist")
    return _chunks(files, chunk_chars)


def _chunks(files: list[str | Path], chunk_chars: int) -> Iterator[str]:
    for file in files:
        with Path(file).open(encoding="utf-8", errors="replace") as handle:
            buffer: list[str] = []
            size = 0
            for line in handle:
                buffer.append(line)
                size += len(line)
                if size >= chunk_chars:
                    yield "".join(buffer)
                    buffer, size = [], 0
            if buffer:
                yield "".join(buffer)


def train_tokenizer(files: list[str | Path], vocab_size: int, out_dir: str | Path, min_frequency: int = 2,
                    show_progress: bool = True, overwrite: bool = False) -> Tokenizer:
    """Train on text files and save tokenizer.json + tokenizer_config.json into out_dir (atomically)."""
    check_output(out_dir, "tokenizer", overwrite, files)
    tokenizer = train_bpe(iter_text_files(files), vocab_size, min_frequency, show_progress)
    with atomic_dir(out_dir, kind="tokenizer", overwrite=overwrite) as tmp:
        tokenizer.save(tmp)
    return tokenizer
