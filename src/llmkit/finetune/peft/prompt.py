"""Prompt tuning (Lester et al., arXiv 2104.08691) and P-tuning: n trained "virtual token" embeddings are put in
front of every sequence while the whole model stays frozen. Done from outside the model by
wrapping two modules: the token embedding (prepends the soft prompt) and the output head (drops
the virtual positions, so logits line up with the real tokens and the usual targets).

Saved in PEFT's PROMPT_TUNING layout (`prompt_embeddings`, shape (n, d)). Loaded for decoding
(`--adapter`, LLM.load(adapter=...)), a soft prompt becomes n virtual token ids past the vocabulary
whose embeddings are its vectors (`VirtualTokenEmbedding`), placed before every sequence through
`model.input_prefix_ids`: the decoding Engine prepends them (and its prefix cache computes them
once), and log-likelihood scoring does too. That is exactly the training-time concatenation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.finetune.peft import register
from llmkit.finetune.peft.base import ADAPTER_WEIGHTS, AdapterMethod, read_adapter_config, write_peft_adapter


class SoftPromptEmbedding(nn.Module):
    def __init__(self, embed: nn.Embedding, n_virtual: int, init_ids: list[int] | None = None):
        super().__init__()
        self.embed = embed
        with torch.no_grad():
            start = embed.weight[torch.tensor(init_ids)] if init_ids else torch.randn(n_virtual, embed.embedding_dim) * 0.02
        self.prompt = nn.Parameter(start.clone().to(embed.weight.dtype))  # (n, C)

    @property
    def weight(self) -> torch.Tensor:
        """The vocabulary's embeddings (what a plain token embedding exposes)."""
        return self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, T, C)
        return torch.cat([self.prompt.expand(len(tokens), -1, -1), x], dim=1)  # (B, n + T, C)


class PromptEncoderEmbedding(SoftPromptEmbedding):
    """P-tuning (Liu et al., arXiv 2103.10385): the virtual tokens are produced by a small MLP over
    trained seed embeddings instead of being trained directly, which the paper found more stable."""

    def __init__(self, embed: nn.Embedding, n_virtual: int, hidden: int):
        super().__init__(embed, n_virtual)
        dim = embed.embedding_dim
        kw = {"device": embed.weight.device, "dtype": embed.weight.dtype}
        self.encoder = nn.Sequential(nn.Linear(dim, hidden, **kw), nn.ReLU(), nn.Linear(hidden, dim, **kw))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, T, C)
        prompt = self.encoder(self.prompt)  # (n, C)
        return torch.cat([prompt.expand(len(tokens), -1, -1), x], dim=1)


class VirtualTokenEmbedding(nn.Module):
    """The decoding form of a soft prompt: ids >= the vocabulary size look up its vectors (n, C)."""

    def __init__(self, embed: nn.Embedding, vectors: torch.Tensor):
        super().__init__()
        self.embed, self.vocab_size = embed, embed.num_embeddings
        self.register_buffer("vectors", vectors.to(embed.weight.device, embed.weight.dtype))

    @property
    def weight(self) -> torch.Tensor:
        return self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        virtual = tokens >= self.vocab_size  # (B, T)
        x = self.embed(tokens.masked_fill(virtual, 0))  # (B, T, C)
        if not bool(virtual.any()):
            return x
        picked = self.vectors[(tokens - self.vocab_size).clamp(min=0)]  # (B, T, C)
        return torch.where(virtual[..., None], picked, x)


def use_soft_prompt_for_decoding(model: nn.Module, vectors: torch.Tensor) -> None:
    """Make the soft prompt (n, C) part of every sequence: virtual ids V..V+n-1 in front."""
    model.tok_embeddings = VirtualTokenEmbedding(model.tok_embeddings, vectors)
    vocab = model.tok_embeddings.vocab_size
    model.input_prefix_ids = tuple(range(vocab, vocab + vectors.shape[0]))


class DropVirtualPositions(nn.Module):
    def __init__(self, head: nn.Module, n_virtual: int):
        super().__init__()
        self.head, self.n_virtual = head, n_virtual

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden[:, self.n_virtual:])  # (B, T, V)


def apply_prompt_tuning(model: nn.Module, n_virtual: int = 20, init_text_ids: list[int] | None = None) -> int:
    """Freeze the model and add a soft prompt of n_virtual vectors; returns the trainable count."""
    if model.cfg.arch != "decoder" or model.cfg.tie_embeddings:
        raise LlmkitError("prompt tuning supports decoder-only models with untied embeddings")
    if init_text_ids is not None and len(init_text_ids) != n_virtual:
        raise LlmkitError(f"the initialising text has {len(init_text_ids)} tokens; it needs {n_virtual}")
    for p in model.parameters():
        p.requires_grad_(False)
    model.tok_embeddings = SoftPromptEmbedding(model.tok_embeddings, n_virtual, init_text_ids)
    model.lm_head = DropVirtualPositions(model.lm_head, n_virtual)
    return n_virtual * model.cfg.d_model


def apply_p_tuning(model: nn.Module, n_virtual: int = 20, hidden: int = 128) -> int:
    """Like apply_prompt_tuning, with the virtual tokens produced by a prompt encoder (P-tuning)."""
    apply_prompt_tuning(model, n_virtual)
    model.tok_embeddings = PromptEncoderEmbedding(model.tok_embeddings.embed, n_virtual, hidden)
    return sum(p.numel() for p in model.tok_embeddings.parameters() if p.requires_grad)


def soft_prompt(model: nn.Module) -> SoftPromptEmbedding:
    if not isinstance(model.tok_embeddings, SoftPromptEmbedding):
        raise LlmkitError("this model has no soft prompt (apply_prompt_tuning first)")
    return model.tok_embeddings


def save_prompt_adapter(model: nn.Module, out_dir: str | Path, base_model: str = "") -> Path:
    """The soft prompt (for P-tuning: the encoder's output, which is all inference needs)."""
    embedding = soft_prompt(model)
    with torch.no_grad():
        prompt = embedding.encoder(embedding.prompt) if isinstance(embedding, PromptEncoderEmbedding) else embedding.prompt
    prompt = prompt.detach().cpu().contiguous()
    cfg = model.cfg
    config = {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": prompt.shape[0],
              "token_dim": cfg.d_model, "num_transformer_submodules": 1, "num_attention_heads": cfg.n_head,
              "num_layers": cfg.n_layer, "prompt_tuning_init": "RANDOM", "inference_mode": True}
    return write_peft_adapter(out_dir, {"prompt_embeddings": prompt}, config)


def load_prompt_adapter(model: nn.Module, adapter_dir: str | Path, config: dict[str, Any] | None = None) -> None:
    """Put a PROMPT_TUNING adapter (llmkit's or PEFT's) onto the model for decoding and scoring."""
    path = Path(adapter_dir)
    config = read_adapter_config(path) if config is None else config
    if config.get("peft_type") != "PROMPT_TUNING":
        raise LlmkitError(f"{path} holds a {config.get('peft_type')} adapter, not PROMPT_TUNING")
    if model.cfg.arch != "decoder":
        raise LlmkitError("soft prompts load onto decoder-only models")
    vectors = load_file(str(path / ADAPTER_WEIGHTS))["prompt_embeddings"]  # (n, C)
    if vectors.shape != (config["num_virtual_tokens"], model.cfg.d_model):
        raise LlmkitError(f"{path}: prompt_embeddings {tuple(vectors.shape)} do not fit this model (d_model "
                          f"{model.cfg.d_model})")
    for p in model.parameters():
        p.requires_grad_(False)
    use_soft_prompt_for_decoding(model, vectors)


@register
class PromptMethod(AdapterMethod):
    name, output_dir = "prompt", "soft_prompt"
    peft_type = "PROMPT_TUNING"
    save, load = staticmethod(save_prompt_adapter), staticmethod(load_prompt_adapter)

    def apply(self, model: nn.Module, cfg) -> None:
        apply_prompt_tuning(model, cfg.prompt_tokens)
