"""Prompt tuning (Lester et al., arXiv 2104.08691) and P-tuning: n trained "virtual token" embeddings are put in
front of every sequence while the whole model stays frozen. Done from outside the model by
wrapping two modules: the token embedding (prepends the soft prompt) and the output head (drops
the virtual positions, so logits line up with the real tokens and the usual targets).

Saved in PEFT's PROMPT_TUNING layout (`prompt_embeddings`, shape (n, d)). Training and scoring
only: decoding with a soft prompt is not wired into the generation paths yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.finetune.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, write_peft_adapter


class SoftPromptEmbedding(nn.Module):
    def __init__(self, embed: nn.Embedding, n_virtual: int, init_ids: list[int] | None = None):
        super().__init__()
        self.embed = embed
        with torch.no_grad():
            start = embed.weight[torch.tensor(init_ids)] if init_ids else torch.randn(n_virtual, embed.embedding_dim) * 0.02
        self.prompt = nn.Parameter(start.clone().to(embed.weight.dtype))  # (n, C)

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


def save_prompt_adapter(model: nn.Module, out_dir: str | Path) -> Path:
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


def load_prompt_adapter(model: nn.Module, adapter_dir: str | Path) -> None:
    path = Path(adapter_dir)
    config = json.loads((path / ADAPTER_CONFIG).read_text())
    if config.get("peft_type") != "PROMPT_TUNING":
        raise LlmkitError(f"{path} holds a {config.get('peft_type')} adapter, not PROMPT_TUNING")
    apply_prompt_tuning(model, config["num_virtual_tokens"])
    soft_prompt(model).prompt.data.copy_(load_file(str(path / ADAPTER_WEIGHTS))["prompt_embeddings"])
