"""Position schemes, each answering three questions for one forward pass:

- `embed(pos)`: a vector added to the token embeddings (learned absolute, sinusoidal);
- `rotation(pos)`: the cos/sin tables that rotate queries and keys (RoPE, arXiv 2104.09864);
- `attn_bias(q_pos, k_pos)`: an additive attention bias (ALiBi, arXiv 2108.12409; T5 relative
  buckets, arXiv 1910.10683).

Every scheme answers all three (None where it does not apply), so the Transformer never branches
on the kind. Positions are logical token indices of shape (B, T); left padding makes them negative.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmkit.model.config import ModelConfig


class PositionScheme(nn.Module):
    def embed(self, pos: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotation(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def attn_bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor | None:
        return None


class LearnedPositions(PositionScheme):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.max_seq_len, cfg.d_model))

    def embed(self, pos):
        return nn.functional.embedding(pos.clamp(min=0), self.weight)  # (B, T, C)


class SinusoidalPositions(PositionScheme):
    """Fixed sin/cos of geometric frequencies (Vaswani et al. 2017), computed on the fly."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dim = cfg.d_model

    def embed(self, pos):
        half = torch.arange(0, self.dim, 2, device=pos.device, dtype=torch.float32)
        angle = pos.clamp(min=0)[..., None].float() / (10000.0 ** (half / self.dim))  # (B, T, C/2)
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)  # (B, T, C) interleaved


def rope_inverse_frequencies(cfg: ModelConfig, device=None, seq_len: int = 0) -> torch.Tensor:
    """inv_freq of shape (n_rot/2,), with linear, Llama-3 or LongRoPE frequency scaling applied.
    LongRoPE's factors depend on the length reached (`seq_len`): short ones within the pre-training
    context, long ones past it."""
    exponents = torch.arange(0, cfg.n_rot, 2, dtype=torch.int64, device=device).float() / cfg.n_rot
    scaling = cfg.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "longrope":
        long = seq_len > scaling["original_max_position_embeddings"]
        factors = torch.tensor(scaling["long_factor" if long else "short_factor"], dtype=torch.float32, device=device)
        return 1.0 / (factors * cfg.rope_theta**exponents)
    inv_freq = 1.0 / (cfg.rope_theta**exponents)
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        return _llama3_scaled(inv_freq, scaling)
    return inv_freq


def rope_attention_factor(cfg: ModelConfig) -> float:
    """LongRoPE (Phi-3) scales cos and sin by sqrt(1 + ln(factor) / ln(original context))."""
    scaling = cfg.rope_scaling or {}
    if scaling.get("rope_type") != "longrope":
        return 1.0
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    original = scaling["original_max_position_embeddings"]
    factor = scaling.get("factor") or cfg.max_seq_len / original
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))


def _llama3_scaled(inv_freq: torch.Tensor, s: dict) -> torch.Tensor:
    """Llama 3.1 scaling: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between."""
    factor, old_len = s["factor"], s["original_max_position_embeddings"]
    low, high = s["low_freq_factor"], s["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    ramp = (1 - smooth) * scaled / factor + smooth * scaled
    in_between = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(in_between, ramp, scaled)


class RotaryPositions(PositionScheme):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

    def rotation(self, pos):
        longrope = (self.cfg.rope_scaling or {}).get("rope_type") == "longrope"
        seq_len = int(pos.max()) + 1 if longrope and pos.numel() else 0
        inv_freq = rope_inverse_frequencies(self.cfg, pos.device, seq_len)
        return rotation_tables(pos[..., None].float() * inv_freq, rope_attention_factor(self.cfg))


def rotation_tables(angles: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sign-folded sin tables (B, 1, T, n_rot) for `apply_rotary`, from (B, T, n_rot/2) angles.
    The sin table is [-sin, sin] so that the rotation needs one roll instead of split, negate, concat."""
    cos, sin = angles.cos(), angles.sin()
    if scale != 1.0:
        cos, sin = cos * scale, sin * scale
    return torch.cat([cos, cos], dim=-1)[:, None], torch.cat([-sin, sin], dim=-1)[:, None]


def apply_rotary(x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the first n_rot dims of x (B, H, T, D) in the half-split layout HF checkpoints use:
    [x1, x2] -> [x1 cos - x2 sin, x2 cos + x1 sin], where roll(x, n_rot/2) = [x2, x1]."""
    cos, signed_sin = (t.to(x.dtype) for t in rotation)
    n_rot = cos.shape[-1]
    if n_rot == x.shape[-1]:  # the usual full rotation: no slicing, whose backward zero-fills
        return x * cos + x.roll(n_rot // 2, dims=-1) * signed_sin
    x_rot, x_pass = x[..., :n_rot], x[..., n_rot:]
    rotated = x_rot * cos + x_rot.roll(n_rot // 2, dims=-1) * signed_sin
    return torch.cat([rotated, x_pass], dim=-1)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Geometric head slopes; for a head count that is not a power of two, the paper's interleave."""

    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start**i for i in range(1, n + 1)]

    closest = 2 ** math.floor(math.log2(n_head))
    slopes = power_of_two(closest)
    if closest != n_head:
        slopes += power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(slopes)


class AlibiPositions(PositionScheme):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head

    def attn_bias(self, q_pos, k_pos):
        distance = (k_pos[:, None, :] - q_pos[:, :, None]).float()  # (B, Tq, Tk), <= 0 for the past
        slopes = alibi_slopes(self.n_head).to(q_pos.device)
        return slopes[None, :, None, None] * distance[:, None]  # (B, H, Tq, Tk)


def t5_relative_bucket(relative: torch.Tensor, bidirectional: bool, n_buckets: int, max_distance: int):
    """Map key-minus-query distances to buckets: exact for small ones, log-spaced up to max_distance."""
    bucket = torch.zeros_like(relative)
    if bidirectional:
        n_buckets //= 2
        bucket += (relative > 0).long() * n_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = n_buckets // 2
    log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (n_buckets - exact)).long()).clamp(max=n_buckets - 1)
    return bucket + torch.where(distance < exact, distance, far)


class T5RelativePositions(PositionScheme):
    def __init__(self, cfg: ModelConfig, bidirectional: bool):
        super().__init__()
        self.bidirectional = bidirectional
        self.n_buckets, self.max_distance = cfg.relative_buckets, cfg.relative_max_distance
        self.weight = nn.Parameter(torch.empty(cfg.relative_buckets, cfg.n_head))

    def attn_bias(self, q_pos, k_pos):
        relative = k_pos[:, None, :] - q_pos[:, :, None]  # (B, Tq, Tk)
        buckets = t5_relative_bucket(relative, self.bidirectional, self.n_buckets, self.max_distance)
        return nn.functional.embedding(buckets, self.weight).permute(0, 3, 1, 2)  # (B, H, Tq, Tk)


def build_positions(cfg: ModelConfig, bidirectional: bool) -> PositionScheme:
    kinds = {
        "rope": RotaryPositions, "learned": LearnedPositions, "sinusoidal": SinusoidalPositions,
        "alibi": AlibiPositions, "none": lambda cfg: PositionScheme(),
        "t5_relative": lambda cfg: T5RelativePositions(cfg, bidirectional),
    }
    return kinds[cfg.position](cfg)
