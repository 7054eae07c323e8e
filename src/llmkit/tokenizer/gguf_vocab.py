"""A `Tokenizer` from the vocabulary a GGUF file keeps in its metadata (`tokenizer.ggml.*`).

GGUF carries no tokenizer.json: llama.cpp stores the token list, their types (1 normal, 3 control,
4 user-defined, 6 byte), merges for byte-level BPE ("gpt2") or scores for SentencePiece ("llama"),
the special ids, add_bos_token and the chat template. This rebuilds the tokenizer those describe
with the `tokenizers` library:

- "gpt2": byte-level BPE with the file's merges; the split regex follows `tokenizer.ggml.pre`
  (Llama 3's, Qwen2's, or GPT-2's default).
- "llama": SentencePiece BPE with byte fallback; merges (when the file has none) are recovered
  from the vocabulary, every split of a token into two tokens ranked by the merged token's score.

Control tokens become special added tokens, so text like <|im_end|> stays one token.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from tokenizers.models import BPE

from llmkit.errors import LlmkitError

CONTROL, USER_DEFINED = 3, 4
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {"llama-bpe": LLAMA3_SPLIT, "llama3": LLAMA3_SPLIT, "llama-v3": LLAMA3_SPLIT, "smaug-bpe": LLAMA3_SPLIT,
          "qwen2": QWEN2_SPLIT, "deepseek-r1-qwen": QWEN2_SPLIT}


def _byte_level(meta: dict[str, Any]) -> Backend:
    vocab = {token: index for index, token in enumerate(meta["tokenizer.ggml.tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    backend = Backend(BPE(vocab, merges, fuse_unk=False))
    split = SPLITS.get(meta.get("tokenizer.ggml.pre", "default"))
    if split is None:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                         pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                  use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    return backend


def recover_merges(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """SentencePiece keeps scores, not merges: every way to cut a token into two vocabulary tokens is
    a merge, and a better-scored result merges earlier."""
    ids = {token: i for i, token in enumerate(tokens)}
    ranked = []
    for token, score in zip(tokens, scores, strict=True):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ids and right in ids:
                ranked.append((-score, ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _sentencepiece(meta: dict[str, Any]) -> Backend:
    """SentencePiece BPE. Spaces become ▁ through Metaspace (one ▁ before the text unless it
    starts with one), except for Phi-3, whose tokenizer.json always prepends one; Gemma files spell
    runs of spaces with real spaces and rank merges by file order, not by score."""
    arch = meta.get("general.architecture", "llama")
    tokens = list(meta["tokenizer.ggml.tokens"])
    scores = meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    if arch.startswith("gemma"):
        tokens = ["▁" * len(t) if t and not t.strip(" ") else t for t in tokens]
        scores = [-float(i) for i in range(len(tokens))]
    merges = ([tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]] if meta.get("tokenizer.ggml.merges")
              else recover_merges(tokens, scores))
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Backend(BPE(vocab, merges, unk_token=None if unk is None else tokens[unk], fuse_unk=True,
                          byte_fallback=True))
    prefix = meta.get("tokenizer.ggml.add_space_prefix", not arch.startswith("gemma"))
    if arch == "phi3":
        steps = [normalizers.Prepend("\u2581")] if prefix else []
        backend.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "\u2581")])
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first" if prefix
                                                         else "never", split=False)
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         *([decoders.Strip(" ", 1, 0)] if prefix else [])])
    return backend


def gguf_tokenizer_parts(meta: dict[str, Any]) -> tuple[Backend, dict[str, Any]]:
    """The tokenizer a GGUF file's metadata describes (`meta`: key -> decoded value), as the
    `tokenizers` backend and its tokenizer_config (Tokenizer.from_gguf_metadata wraps them)."""
    kind = meta.get("tokenizer.ggml.model")
    builders = {"gpt2": _byte_level, "llama": _sentencepiece}
    if kind not in builders:
        raise LlmkitError(f"the GGUF tokenizer type {kind!r} is not supported (supported: gpt2, llama)")
    backend = builders[kind](meta)
    tokens, types = meta["tokenizer.ggml.tokens"], meta.get("tokenizer.ggml.token_type") or []
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, kind_ in zip(tokens, types) if kind_ == CONTROL])
    backend.add_tokens([AddedToken(t, special=False, normalized=False)
                        for t, kind_ in zip(tokens, types) if kind_ == USER_DEFINED])
    config = _special_tokens(meta, tokens)
    add_bos = meta.get("tokenizer.ggml.add_bos_token", kind == "llama")
    if add_bos and config.get("bos_token"):
        bos = config["bos_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))])
    config["add_bos_token"] = bool(add_bos)
    if isinstance(meta.get("tokenizer.chat_template"), str):
        config["chat_template"] = meta["tokenizer.chat_template"]
    return backend, config


def _special_tokens(meta: dict[str, Any], tokens: list[str]) -> dict[str, str]:
    config = {}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"),
                      ("unk", "unknown_token_id")):
        index = meta.get(f"tokenizer.ggml.{key}")
        if isinstance(index, int) and 0 <= index < len(tokens):
            config[f"{role}_token"] = tokens[index]
    return config


def gguf_tokenizer_metadata(path) -> dict[str, Any]:
    """The tokenizer keys of a GGUF file's metadata, decoded."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items()
            if name.startswith("tokenizer.") or name == "general.architecture"}
