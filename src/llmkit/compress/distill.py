"""Knowledge distillation (Hinton et al., arXiv 1503.02531) as a Task of the one training loop:
the student's loss is alpha * CE(student, data) + (1 - alpha) * T^2 * KL(teacher_T || student_T)
per token, where _T means softmax at temperature T (T^2 keeps the soft term's gradients on the
scale of the hard one). The teacher is frozen and runs under no_grad on the same batch.
`llmkit compress distill` trains a student config on prepared shards this way."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from llmkit.checkpoint import load_checkpoint
from llmkit.errors import LlmkitError
from llmkit.train.config import PretrainConfig
from llmkit.train.cross_entropy import summed_cross_entropy
from llmkit.train.task import IGNORE_INDEX


class LogitDistillation:
    name = "logit_kd"

    def __init__(self, teacher: torch.nn.Module, alpha: float = 0.5, temperature: float = 2.0):
        self.teacher, self.alpha, self.temperature = teacher.eval(), alpha, temperature
        for p in teacher.parameters():
            p.requires_grad_(False)

    def make_batch(self, inputs, targets, generator=None) -> dict:
        return {"tokens": inputs, "targets": targets}

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, int]:
        tokens, targets = batch["tokens"], batch["targets"]
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
        return self.alpha * hard + (1 - self.alpha) * soft, int(keep.sum())


@dataclass
class DistillConfig(PretrainConfig):
    """`llmkit pretrain`'s settings (the student is --model, the data --data) plus the teacher."""

    teacher: str = ""  # HF-layout checkpoint directory with the same tokenizer as the data
    alpha: float = 0.5  # weight of the hard-label cross-entropy
    temperature: float = 2.0
    out: str = "runs/distill"


def run_distill(cfg: DistillConfig) -> dict:
    from llmkit.train.pretrain import run_pretrain

    if not cfg.teacher:
        raise LlmkitError("--teacher DIR is required (the checkpoint to distil from)")
    teacher = load_checkpoint(cfg.teacher)
    return run_pretrain(cfg, objective=LogitDistillation(teacher, cfg.alpha, cfg.temperature))
