"""`ModelConfig`: every architectural choice of the one Transformer, as data.

Attention heads, sketched for grouped-query attention (n_head=8, n_kv_head=2):

    query heads  q0 q1 q2 q3 | q4 q5 q6 q7
                  \\  |  |  /     \\  |  |  /
    kv heads         kv0      |      kv1

n_kv_head == n_head is multi-head attention, n_kv_head == 1 multi-query attention.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Arch = Literal["decoder", "prefix_decoder", "encoder_decoder"]
Norm = Literal["rmsnorm", "layernorm"]
Residual = Literal["pre", "post", "parallel", "sandwich", "post_sublayer"]
Activation = Literal["gelu", "gelu_tanh", "relu", "silu", "swiglu", "geglu", "geglu_tanh", "reglu"]
QKNorm = Literal["none", "head", "full"]
LayerType = Literal["full", "sliding"]
Position = Literal["rope", "learned", "sinusoidal", "alibi", "t5_relative", "none"]


@dataclass
class ModelConfig:
    """Shapes and component choices; `name` is informational, `family` picks the HF key layout."""

    name: str = "custom"
    family: str = "llmkit"  # llama | mistral | qwen2 | qwen3 | mixtral | gemma2 | gemma3 | phi3 | olmo2 | gpt2 | llmkit
    arch: Arch = "decoder"
    vocab_size: int = 32000
    n_layer: int = 12
    n_encoder_layer: int = 0  # encoder_decoder only; 0 means "same as n_layer"
    n_head: int = 12
    n_kv_head: int | None = None  # None: multi-head attention
    d_model: int = 768
    head_dim: int | None = None  # None: d_model // n_head
    d_ff: int = 3072
    max_seq_len: int = 2048
    # normalisation and residual wiring
    norm: Norm = "rmsnorm"
    norm_eps: float = 1e-5
    norm_bias: bool = False
    norm_offset: float = 0.0  # RMSNorm scales by (offset + weight): Gemma stores weight - 1 (offset 1)
    residual: Residual = "pre"  # sandwich: pre- and post-norm around each sub-layer (Gemma 2/3);
    # post_sublayer: x + norm(f(x)), the norm on the sub-layer's output (OLMo 2)
    deepnorm: bool = False  # post-norm with DeepNet's residual up-scaling (arXiv 2203.00555)
    # feed-forward
    activation: Activation = "swiglu"
    mlp_bias: bool = False
    n_expert: int = 0  # > 0: Mixture-of-Experts feed-forward (Mixtral)
    n_expert_per_token: int = 2
    # attention
    attn_qkv_bias: bool = False
    attn_out_bias: bool = False
    attn_scale: float | None = None  # None: 1/sqrt(head_dim); T5 folds it into init (1.0)
    sliding_window: int | None = None  # a query sees at most this many keys, itself included
    layer_types: list[LayerType] | None = None  # per layer: sliding layers use sliding_window (Gemma 2/3)
    qk_norm: QKNorm = "none"  # RMSNorm of queries and keys, per head (Qwen3, Gemma 3) or across heads (OLMo 2)
    attn_softcap: float | None = None  # scores become cap * tanh(scores / cap) before the softmax (Gemma 2)
    # positions
    position: Position = "rope"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # {"rope_type": "linear"|"llama3"|"longrope", ...}
    rope_local_theta: float | None = None  # RoPE base of the sliding layers, unscaled (Gemma 3)
    rotary_pct: float = 1.0  # partial rotary (GPT-NeoX): share of head_dim that rotates
    relative_buckets: int = 32  # t5_relative only
    relative_max_distance: int = 128
    # embeddings and sharing
    tie_embeddings: bool = False
    embed_scale: bool = False  # token embeddings times sqrt(d_model) (Gemma)
    final_softcap: float | None = None  # logits become cap * tanh(logits / cap) (Gemma 2)
    n_unique_layers: int | None = None  # ALBERT-style sharing: consecutive layers reuse a block
    init_std: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific fields kept for round trips

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            self.head_dim = self.d_model // self.n_head
        if self.arch == "encoder_decoder" and not self.n_encoder_layer:
            self.n_encoder_layer = self.n_layer
        self.validate()

    def validate(self) -> None:
        from llmkit.errors import LlmkitError

        problems = []
        if self.n_head % self.n_kv_head:
            problems.append(f"n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}")
        if self.n_expert and not 0 < self.n_expert_per_token <= self.n_expert:
            problems.append(f"n_expert_per_token={self.n_expert_per_token} must be in 1..n_expert={self.n_expert}")
        if self.n_unique_layers and self.n_layer % self.n_unique_layers:
            problems.append(f"n_layer={self.n_layer} is not a multiple of n_unique_layers={self.n_unique_layers}")
        if self.position == "rope" and int(self.head_dim * self.rotary_pct) % 2:
            problems.append("rotary dimensions (head_dim * rotary_pct) must be even")
        if self.layer_types is not None and len(self.layer_types) != self.n_layer:
            problems.append(f"layer_types lists {len(self.layer_types)} layers, n_layer is {self.n_layer}")
        if self.layer_types and "sliding" in self.layer_types and not self.sliding_window:
            problems.append("sliding layers in layer_types need a sliding_window")
        if problems:
            raise LlmkitError(f"invalid ModelConfig {self.name!r}: " + "; ".join(problems))

    def layer_type(self, layer_idx: int) -> str:
        """"sliding" or "full"; without layer_types every layer is sliding when a window is set."""
        if self.layer_types is not None:
            return self.layer_types[layer_idx]
        return "sliding" if self.sliding_window else "full"

    @property
    def n_rot(self) -> int:
        """Dimensions of each head that RoPE rotates."""
        return int(self.head_dim * self.rotary_pct)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with `changes`; a head_dim that was derived from d_model / n_head is derived again."""
        reshaped = "d_model" in changes or "n_head" in changes
        if reshaped and "head_dim" not in changes and self.head_dim == self.d_model // self.n_head:
            changes["head_dim"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
