"""Knowledge distillation (Hinton et al., arXiv 1503.02531) as a Task of the one training loop:
the student's loss is alpha * CE(student, data) + (1 - alpha) * T^2 * KL(teacher_T || student_T)
per token, where _T means softmax at temperature T (T^2 keeps the soft term's gradients on the
scale of the hard one). The teacher is frozen and runs under no_grad on the same batch.

With `hidden_weight` > 0 and equal widths, intermediate layers are matched too (Patient KD, Sun et
al., arXiv 1908.09355): student block j's output against teacher block (j + 1) * L_t / L_s - 1, as
the mean squared distance of the L2-normalised hidden states per token. With `attention_weight` > 0
and equal head counts, the same layer pairs' attention maps are matched (TinyBERT, Jiao et al.,
arXiv 1909.10351): the squared difference of the attention probabilities, summed over keys and
averaged over heads, per query token (maps recomputed from each layer's queries and keys by hooks,
since the fused attention kernel does not return them).
`llmkit compress distill` trains a student config on prepared shards this way; `--sequence-level`
instead trains on the teacher's own greedy continuations of prompts cut from the data (Kim & Rush,
arXiv 1606.07947), generated on the fly through the decoding Engine (llmkit.decode)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from llmkit.checkpoint import load_checkpoint
from llmkit.decode import generate_ids
from llmkit.errors import LlmkitError
from llmkit.train.config import ShardTrainingConfig
from llmkit.train.cross_entropy import summed_cross_entropy
from llmkit.train.task import IGNORE_INDEX, StatelessTask


class LogitDistillation(StatelessTask):
    name = "logit_kd"

    def __init__(self, teacher: torch.nn.Module, alpha: float = 0.5, temperature: float = 2.0,
                 hidden_weight: float = 0.0, attention_weight: float = 0.0):
        self.teacher, self.alpha, self.temperature, self.hidden_weight = teacher.eval(), alpha, temperature, hidden_weight
        self.attention_weight = attention_weight
        self._student_maps: list[torch.Tensor] = []
        self._teacher_maps: list[torch.Tensor] = []
        if attention_weight:
            _record_attention(teacher, self._teacher_maps)
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._student_hidden: list[torch.Tensor] = []
        self._teacher_hidden: list[torch.Tensor] = []
        self._hooked = False
        if hidden_weight:
            _record_blocks(teacher, self._teacher_hidden)

    def _attention_loss(self, keep: torch.Tensor) -> torch.Tensor:
        """Summed over kept query tokens, averaged over heads and layer pairs: sum_k (A_s - A_t)^2."""
        pairs = _pairs(self._student_maps, self._teacher_maps)
        total = torch.zeros((), device=keep.device)
        for s_map, t_map in pairs:
            if s_map.shape != t_map.shape:
                raise LlmkitError(f"attention-map matching needs equal head counts (student {s_map.shape[1]}, "
                                  f"teacher {t_map.shape[1]}); use --attention-weight 0")
            total = total + ((s_map - t_map).pow(2).sum(-1).mean(1) * keep).sum()  # (B, T) -> scalar
        self._student_maps.clear()
        self._teacher_maps.clear()
        return total / max(len(pairs), 1)

    def _hidden_loss(self, keep: torch.Tensor) -> torch.Tensor:
        """Summed over kept tokens and matched layer pairs: ||h_s/|h_s| - h_t/|h_t|||^2 (PKD)."""
        student, teacher = self._student_hidden, self._teacher_hidden
        pairs = len(student)
        total = torch.zeros((), device=keep.device)
        for j, h in enumerate(student):
            t = teacher[(j + 1) * len(teacher) // len(student) - 1]
            if h.shape != t.shape:
                raise LlmkitError(f"hidden-state matching needs equal widths (student {h.shape[-1]}, teacher "
                                  f"{t.shape[-1]}); use --hidden-weight 0")
            distance = (F.normalize(h.float(), dim=-1) - F.normalize(t.float(), dim=-1)).pow(2).sum(-1)  # (B, T)
            total = total + (distance * keep).sum()
        student.clear()
        teacher.clear()
        return total / max(pairs, 1)

    def make_batch(self, inputs, targets, generator=None) -> dict:
        return {"tokens": inputs, "targets": targets}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        tokens, targets = batch["tokens"], batch["targets"]
        if (self.hidden_weight or self.attention_weight) and not self._hooked:
            student = model.module if hasattr(model, "module") else model
            if self.hidden_weight:
                _record_blocks(student, self._student_hidden)
            if self.attention_weight:
                _record_attention(student, self._student_maps)
            self._hooked = True
        logits = model(tokens)  # (B, T, V)
        if next(self.teacher.parameters()).device != tokens.device:
            self.teacher.to(tokens.device)  # loaded on the CPU; follows the student to its device
        with torch.no_grad():
            teacher_logits = self.teacher(tokens)
        if teacher_logits.shape[-1] != logits.shape[-1]:
            raise LlmkitError(f"teacher vocabulary {teacher_logits.shape[-1]} != student {logits.shape[-1]}: "
                              "distillation needs the same tokenizer")
        keep = targets != IGNORE_INDEX  # (B, T)
        t = self.temperature
        student_logp = F.log_softmax(logits.float() / t, -1)
        teacher_logp = F.log_softmax(teacher_logits.float() / t, -1)
        kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)  # (B, T)
        soft = (kl * keep).sum() * t * t
        hard = summed_cross_entropy(logits, targets)
        total = self.alpha * hard + (1 - self.alpha) * soft
        if self.hidden_weight:
            total = total + self.hidden_weight * self._hidden_loss(keep)
        if self.attention_weight:
            total = total + self.attention_weight * self._attention_loss(keep)
        return total, int(keep.sum())


def _pairs(student: list, teacher: list):
    """(student item, teacher item) for student layer j and teacher layer (j + 1) L_t / L_s - 1."""
    return [(h, teacher[(j + 1) * len(teacher) // len(student) - 1]) for j, h in enumerate(student)]


def _attention_maps(attn, x: torch.Tensor, ctx) -> torch.Tensor:
    """Causal attention probabilities (B, H, T, T) of one Attention module on its input x (B, T, C)."""
    from llmkit.model.positions import apply_rotary

    q = attn._heads(attn.q_proj(x))  # (B, H, T, D)
    k = attn._heads(attn.k_proj(x))  # (B, Hkv, T, D)
    if ctx.rotation is not None:
        q, k = apply_rotary(q, ctx.rotation), apply_rotary(k, ctx.rotation)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q @ k.transpose(-1, -2)).float() * (attn.scale or attn.head_dim**-0.5)  # (B, H, T, T)
    future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


def _record_attention(model: torch.nn.Module, store: list) -> None:
    from llmkit.model.attention import Attention

    for layer in model.layers:
        if not isinstance(layer.attn, Attention):
            raise LlmkitError("attention-map matching needs the model's plain attention modules")
        layer.attn.register_forward_hook(lambda module, args, out: store.append(_attention_maps(module, args[0], args[1])))


def _record_blocks(model: torch.nn.Module, store: list) -> None:
    """Append each block's output to `store` on every forward pass."""
    for layer in model.layers:
        layer.register_forward_hook(lambda module, args, out: store.append(out) and None)


class SequenceLevelDistillation(StatelessTask):
    """Each batch: the first `prompt_len` tokens of every window are a prompt, the teacher continues it
    greedily for `new_tokens` tokens, and the student learns those tokens (cross-entropy)."""

    name = "sequence_kd"

    def __init__(self, teacher: torch.nn.Module, prompt_len: int = 32, new_tokens: int = 32):
        self.teacher, self.prompt_len, self.new_tokens = teacher.eval(), prompt_len, new_tokens
        for p in teacher.parameters():
            p.requires_grad_(False)

    def make_batch(self, inputs, targets, generator=None) -> dict:
        prompts = inputs[:, : self.prompt_len].tolist()
        continuations = generate_ids(self.teacher, prompts, self.new_tokens)  # greedy, no stop tokens
        width = self.prompt_len + max(len(c) for c in continuations) - 1
        tokens = torch.zeros(len(prompts), width, dtype=torch.long)
        labels = torch.full_like(tokens, IGNORE_INDEX)
        for row, (prompt, more) in enumerate(zip(prompts, continuations, strict=True)):
            sequence = torch.tensor(prompt + more)
            tokens[row, : len(sequence) - 1] = sequence[:-1]
            labels[row, self.prompt_len - 1: len(sequence) - 1] = sequence[self.prompt_len:]  # the teacher's tokens
        return {"tokens": tokens, "targets": labels}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        targets = batch["targets"]
        return summed_cross_entropy(model(batch["tokens"]), targets), int((targets != IGNORE_INDEX).sum())


@dataclass
class DistillConfig(ShardTrainingConfig):
    """A shard-training run (the student is --model, the data --data) plus the teacher and how it teaches."""

    teacher: str = ""  # HF-layout checkpoint directory with the same tokenizer as the data
    alpha: float = 0.5  # weight of the hard-label cross-entropy
    temperature: float = 2.0
    hidden_weight: float = 0.0  # > 0: also match normalised intermediate hidden states (PKD; equal widths)
    attention_weight: float = 0.0  # > 0: also match attention maps (TinyBERT; equal head counts)
    sequence_level: bool = False  # train on the teacher's greedy continuations instead of soft targets
    prompt_len: int = 32  # sequence level: prompt tokens cut from each window
    new_tokens: int = 32  # sequence level: tokens the teacher generates per prompt
    out: str = "runs/distill"


def run_distill(cfg: DistillConfig) -> dict:
    from llmkit.train.pretrain import train_on_shards

    if not cfg.teacher:
        raise LlmkitError("--teacher DIR is required (the checkpoint to distil from)")
    teacher = load_checkpoint(cfg.teacher)
    if cfg.sequence_level:
        if cfg.prompt_len >= cfg.batch.seq_len:
            raise LlmkitError(f"--prompt-len {cfg.prompt_len} must be shorter than --batch.seq_len {cfg.batch.seq_len}")
        return train_on_shards(cfg, lambda *_: SequenceLevelDistillation(teacher, cfg.prompt_len, cfg.new_tokens),
                               "sequence-level distillation")
    return train_on_shards(cfg, lambda *_: LogitDistillation(teacher, cfg.alpha, cfg.temperature, cfg.hidden_weight,
                                                             cfg.attention_weight), "logit distillation")
