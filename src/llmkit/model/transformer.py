"""The one Transformer: a decoder-only model (causal or prefix) and an encoder-decoder built from
the same stack parts (positions, blocks, final norm). Behaviour comes from `ModelConfig`; nothing here knows about files,
devices, quantization or parallelism."""

from __future__ import annotations

import torch
from torch import nn

from llmkit.model.attention import AttentionContext
from llmkit.model.blocks import build_block
from llmkit.model.config import ModelConfig
from llmkit.model.masks import attention_allowed, merge_bias
from llmkit.model.norms import build_norm
from llmkit.model.positions import build_positions


def default_positions(tokens: torch.Tensor) -> torch.Tensor:
    return torch.arange(tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)  # (B, T)


class StackParts:
    """Position scheme + blocks + final norm, and how a forward pass runs them: held by `Stack` (each
    half of an encoder-decoder), by the decoder-only `Transformer` beside its embeddings and head,
    and by a pipeline stage's share of the blocks; each owns its parts, none inherits another's.
    With `n_unique_layers`, consecutive layers share a block (ALBERT, arXiv 1909.11942):
    `layer_order` maps each of the n_layer steps to its block."""

    def add_stack_parts(self, cfg: ModelConfig, n_layer: int, causal: bool, cross_attention: bool = False) -> None:
        self.causal, self.window = causal, cfg.sliding_window
        self.positions = build_positions(cfg, bidirectional=not causal)
        # Layers of two kinds (Gemma 2/3: sliding and full) get one context each, built once per pass.
        self.layer_kinds = [cfg.layer_type(i) for i in range(n_layer)] if cfg.layer_types else None
        if cfg.rope_local_theta is not None:
            self.local_positions = build_positions(cfg.replace(rope_theta=cfg.rope_local_theta, rope_scaling=None),
                                                   bidirectional=not causal)
        n_unique = cfg.n_unique_layers or n_layer
        self.layers = nn.ModuleList(build_block(cfg, cross_attention) for _ in range(n_unique))
        self.layer_order = [i * n_unique // n_layer for i in range(n_layer)]
        self.norm = build_norm(cfg)

    def context(self, pos, explicit_pos: bool, cache, prefix_len, dtype, segments=None) -> AttentionContext:
        """The context of every layer; with layer kinds, `.sliding` is the sliding layers' own."""
        window = None if self.layer_kinds else self.window
        ctx = self._context(pos, explicit_pos, cache, prefix_len, dtype, segments, window, self.positions)
        if self.layer_kinds:
            local = getattr(self, "local_positions", self.positions)
            ctx.sliding = self._context(pos, explicit_pos, cache, prefix_len, dtype, segments, self.window, local)
        return ctx

    def _context(self, pos, explicit_pos, cache, prefix_len, dtype, segments, window, positions) -> AttentionContext:
        k_pos = pos if cache is None else cache.key_positions(pos)  # (B, Tk)
        bias = positions.attn_bias(pos, k_pos)  # (B, H, Tq, Tk) or None
        ctx = AttentionContext(pos=pos, rotation=positions.rotation(pos), cache=cache)
        plain = cache.keys_are_queries if cache is not None else not explicit_pos  # keys = the queries, in order
        simple = plain and prefix_len is None and bias is None and segments is None
        if simple and window is None:
            ctx.is_causal = self.causal  # the fused SDPA kernels build this mask themselves
        elif not (simple and not self.causal):
            allowed = attention_allowed(pos, k_pos, self.causal, prefix_len, window, segments)
            ctx.mask = merge_bias(allowed, bias, dtype)
        return ctx

    def run_layers(self, x, ctx: AttentionContext, memory=None, memory_ctx=None) -> torch.Tensor:
        for layer_idx in range(len(self.layer_order)):
            x = self.run_block(layer_idx, x, ctx, memory, memory_ctx)
        return self.norm(x)

    def layer_context(self, layer_idx: int, ctx: AttentionContext) -> AttentionContext:
        """The context of layer `layer_idx`: the sliding layers' own where layers are of two kinds."""
        return ctx.sliding if self.layer_kinds and self.layer_kinds[layer_idx] == "sliding" else ctx

    def run_block(self, layer_idx: int, x, ctx: AttentionContext, memory=None, memory_ctx=None) -> torch.Tensor:
        """Layer `layer_idx` alone, with its kind's context (sliding or full)."""
        layer_ctx = self.layer_context(layer_idx, ctx)
        return self.layers[self.layer_order[layer_idx]](x, layer_ctx, layer_idx, memory, memory_ctx)


class Stack(StackParts, nn.Module):
    """One stack of blocks on its own: each half of an encoder-decoder."""

    def __init__(self, cfg: ModelConfig, n_layer: int, causal: bool, cross_attention: bool = False):
        super().__init__()
        self.add_stack_parts(cfg, n_layer, causal, cross_attention)


class SoftcappedLinear(nn.Linear):
    """The output head of Gemma 2: logits become cap * tanh(logits / cap)."""

    cap: float = 30.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(x) / self.cap) * self.cap


class LanguageModelHead(nn.Module):
    """Token embeddings in, logits out; ties the two when the config says so."""

    def _init_embeddings(self, cfg: ModelConfig) -> None:
        # an empty _weight skips Embedding's own normal_ init (init_weights sets every parameter):
        # on the meta device that init imports all of torch._dynamo (0.8 s, ~70 MB per process)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model, _weight=torch.empty(cfg.vocab_size, cfg.d_model))
        # Token ids that go before every sequence at inference, ahead of its own tokens: a soft
        # prompt's virtual tokens (llmkit.finetune.peft.prompt). Decoding and scoring prepend them.
        self.input_prefix_ids: tuple[int, ...] = ()
        head = SoftcappedLinear if cfg.final_softcap else nn.Linear
        self.lm_head = head(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.final_softcap:
            self.lm_head.cap = cfg.final_softcap
        self.tie_weights()

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(tokens)  # (B, T, C)
        if self.cfg.embed_scale:  # Gemma: sqrt(d_model), rounded to the activations' dtype as Gemma does
            x = x * torch.tensor(self.cfg.d_model**0.5, dtype=x.dtype)
        return x

    def tie_weights(self) -> None:
        if self.cfg.tie_embeddings:
            self.lm_head.weight = self.tok_embeddings.weight


class Transformer(StackParts, LanguageModelHead):
    """Decoder-only model. `arch="prefix_decoder"` makes the first prefix_len tokens see each other."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.add_stack_parts(cfg, cfg.n_layer, causal=True)
        self.cfg = cfg
        self._init_embeddings(cfg)

    def hidden_states(self, tokens, pos=None, cache=None, prefix_len=None, segments=None) -> torch.Tensor:
        """Final-norm hidden states (B, T, C) for tokens (B, T)."""
        return self.run_layers(*self.block_inputs(tokens, pos, cache, prefix_len, segments))

    def block_inputs(self, tokens, pos=None, cache=None, prefix_len=None, segments=None):
        """(x (B, T, C), AttentionContext): what the first block receives; blocks can then be run one
        at a time (block-wise calibration) with `run_block`."""
        explicit_pos = pos is not None
        x = self.embed(tokens)  # (B, T, C); (B, T/tp, C) under sequence parallelism
        if not explicit_pos:
            # An embedding transform may prepend positions (soft prompts): count what it returns.
            pos = default_positions(x[..., 0] if x.shape[1] > tokens.shape[1] else tokens)
        added = self.positions.embed(pos)
        x = x if added is None else x + added.to(x.dtype)
        if self.cfg.arch != "prefix_decoder":
            prefix_len = None
        ctx = self.context(pos, explicit_pos, cache, prefix_len, x.dtype, segments)
        return x, ctx

    def forward(self, tokens, pos=None, cache=None, prefix_len=None, segments=None) -> torch.Tensor:
        """Logits (B, T, V). pos (B, T): logical positions, negative for left padding.
        cache: a KV cache (see llmkit.decode.kv_cache). prefix_len (B,): prefix decoders only.
        segments (B, T): document ids of packed sequences (with pos restarting per document)."""
        return self.lm_head(self.hidden_states(tokens, pos, cache, prefix_len, segments))


class EncoderDecoder(LanguageModelHead):
    """T5/BART shape: a bidirectional encoder, a causal decoder cross-attending to its output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Stack(cfg, cfg.n_encoder_layer, causal=False)
        self.decoder = Stack(cfg, cfg.n_layer, causal=True, cross_attention=True)
        self._init_embeddings(cfg)

    def _embed(self, stack: Stack, tokens, pos):
        x = self.tok_embeddings(tokens)
        added = stack.positions.embed(pos)
        return x if added is None else x + added.to(x.dtype)

    def encode(self, src: torch.Tensor, src_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output (B, S, C); src_valid (B, S) marks real (non-padding) source tokens."""
        pos = default_positions(src)
        x = self._embed(self.encoder, src, pos)
        ctx = self.encoder.context(pos, False, None, None, x.dtype)
        if src_valid is not None:
            ctx.mask = merge_bias(src_valid[:, None, None, :].expand(-1, 1, src.shape[1], -1),
                                  self.encoder.positions.attn_bias(pos, pos), x.dtype)
        return self.encoder.run_layers(x, ctx)

    def decode(self, tokens, memory, pos=None, cache=None, src_valid=None) -> torch.Tensor:
        """Logits (B, T, V) for decoder tokens given the encoder output `memory`."""
        explicit_pos = pos is not None
        pos = pos if explicit_pos else default_positions(tokens)
        x = self._embed(self.decoder, tokens, pos)
        ctx = self.decoder.context(pos, explicit_pos, cache, None, x.dtype)
        memory_mask = None if src_valid is None else src_valid[:, None, None, :]  # (B, 1, 1, S)
        memory_ctx = AttentionContext(pos=pos, mask=memory_mask)
        return self.lm_head(self.decoder.run_layers(x, ctx, memory, memory_ctx))

    def forward(self, src, tokens, src_valid=None) -> torch.Tensor:
        return self.decode(tokens, self.encode(src, src_valid), src_valid=src_valid)
