"""`Tokenizer`: an HF `tokenizer.json` (fast tokenizers library) plus what `tokenizer_config.json`
adds: special tokens and the Jinja chat template. Loads what transformers saves, and saves
what `transformers.AutoTokenizer` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend

from llmkit.errors import LlmkitError
from llmkit.fileio import read_json_object, write_json
from llmkit.tokenizer.gguf_vocab import gguf_tokenizer_metadata, gguf_tokenizer_parts

CONFIG_FILE, BACKEND_FILE, TEMPLATE_FILE = "tokenizer_config.json", "tokenizer.json", "chat_template.jinja"


def _token_text(value: Any) -> str | None:
    """Special tokens appear as plain strings or as {"content": ...} dicts in tokenizer_config.json."""
    text = value.get("content") if isinstance(value, dict) else value
    return text if isinstance(text, str) else None


def _chat_template(config: dict[str, Any], path: Path) -> str | None:
    """The template as a string: HF also stores a list of named templates ("default" is the one)."""
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default", next(iter(named.values()), None))
    if template is not None and not isinstance(template, str):
        raise LlmkitError(f"{path / CONFIG_FILE}: chat_template must be a string, not {type(template).__name__}")
    return template


class Tokenizer:
    def __init__(self, backend: Backend, config: dict[str, Any] | None = None):
        self.backend = backend
        self.config = dict(config or {})

    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any]) -> Tokenizer:
        """The tokenizer a GGUF file's `tokenizer.ggml.*` metadata describes (key -> decoded value)."""
        return cls(*gguf_tokenizer_parts(meta))

    @classmethod
    def from_dir(cls, directory: str | Path) -> Tokenizer:
        """From a checkpoint directory, or from a .gguf file's metadata."""
        path = Path(directory)
        if path.suffix == ".gguf" and path.is_file():
            return cls.from_gguf_metadata(gguf_tokenizer_metadata(path))
        if not (path / BACKEND_FILE).is_file():
            raise LlmkitError(f"no {BACKEND_FILE} in {path}: train one with `llmkit tokenizer train` or copy the model's")
        try:
            backend = Backend.from_file(str(path / BACKEND_FILE))
        except Exception as err:  # the Rust library raises a bare Exception on malformed files
            raise LlmkitError(f"{path / BACKEND_FILE} could not be read ({err})") from None
        config = read_json_object(path / CONFIG_FILE) if (path / CONFIG_FILE).is_file() else {}
        if "chat_template" not in config and (path / TEMPLATE_FILE).is_file():
            config["chat_template"] = (path / TEMPLATE_FILE).read_text(encoding="utf-8", errors="replace")
        config["chat_template"] = _chat_template(config, path)
        if config["chat_template"] is None:
            del config["chat_template"]
        return cls(backend, config)

    def save(self, directory: str | Path) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(path / BACKEND_FILE))
        write_json(path / CONFIG_FILE, self.config)

    # --- special tokens -------------------------------------------------------------------
    def _special_id(self, role: str) -> int | None:
        text = _token_text(self.config.get(f"{role}_token"))
        return None if text is None else self.backend.token_to_id(text)

    @property
    def bos_id(self) -> int | None:
        return self._special_id("bos")

    @property
    def eos_id(self) -> int | None:
        return self._special_id("eos")

    @property
    def pad_id(self) -> int | None:
        pad = self._special_id("pad")
        return self.eos_id if pad is None else pad

    @property
    def padding_id(self) -> int:
        """The id right-padding fills with: pad (else eos), else 0; padded positions carry no loss."""
        return 0 if self.pad_id is None else self.pad_id

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_id(self, text: str) -> int | None:
        return self.backend.token_to_id(text)

    def special_ids(self) -> dict:
        """pad/eos/bos/mask ids and span-corruption sentinels (<|sentinel_i|>, or T5's <extra_id_i>)."""
        sentinels = []
        for pattern in ("<|sentinel_{}|>", "<extra_id_{}>"):
            while (found := self.token_id(pattern.format(len(sentinels)))) is not None:
                sentinels.append(found)
            if sentinels:
                break
        mask = self._special_id("mask")
        return {"pad": self.pad_id, "eos": self.eos_id, "bos": self.bos_id if self.bos_id is not None else self.eos_id,
                "mask": mask if mask is not None else self.token_id("<|mask|>"), "sentinels": sentinels}

    # --- text <-> ids ---------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids; `add_special_tokens` applies the tokenizer's own template (e.g. Llama's BOS)."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # --- chat -----------------------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        template = self.config.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = {t["name"]: t["template"] for t in template}
            template = named.get("default", next(iter(named.values()), None))
        return template

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True,
                            **variables: Any) -> str:
        """Render `messages` ([{"role": ..., "content": ...}]) with the checkpoint's Jinja template."""
        from llmkit.tokenizer.chat import render_chat

        if self.chat_template is None:
            raise LlmkitError("this tokenizer has no chat_template in tokenizer_config.json; add one to chat")
        specials = {f"{r}_token": _token_text(self.config.get(f"{r}_token")) or "" for r in ("bos", "eos", "pad")}
        return render_chat(self.chat_template, messages, add_generation_prompt, **specials, **variables)
