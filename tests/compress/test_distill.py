"""Logit distillation: the KD loss matches its formula in float64, and a student distilled from the
session's trained model beats the same student trained on the data alone for the same steps."""

import json
import math

import torch

from llmkit.cli import main
from llmkit.compress.distill import LogitDistillation
from tests.compress.conftest import perplexity, windows


def test_kd_loss_matches_the_formula():
    torch.manual_seed(0)
    student_logits, teacher_logits = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[1, 2, -100], [0, 4, 3]])

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits, self.weight = logits, torch.nn.Parameter(torch.zeros(1))

        def forward(self, tokens):
            return self.logits

    task = LogitDistillation(Fixed(teacher_logits), alpha=0.3, temperature=2.0)
    loss, count = task.loss(Fixed(student_logits), {"tokens": torch.zeros(2, 3, dtype=torch.long), "targets": targets})
    want = 0.0
    for b in range(2):
        for t in range(3):
            if targets[b, t] < 0:
                continue
            ce = -torch.log_softmax(student_logits[b, t], -1)[targets[b, t]]
            p, q = torch.softmax(teacher_logits[b, t] / 2, -1), torch.softmax(student_logits[b, t] / 2, -1)
            want += 0.3 * ce + 0.7 * 4 * (p * (p / q).log()).sum()
    assert count == 5 and math.isclose(loss.item(), want.item(), rel_tol=1e-5)


def test_distilled_student_beats_the_same_student_without_a_teacher(trained_small, prepared_data, tmp_path):
    common = ["--data", str(prepared_data), "--max-steps", "60", "--batch.seq_len", "64",
              "--batch.batch_size", "8", "--optim.lr", "3e-3", "--schedule.warmup-steps", "10", "--eval-every", "0",
              "--no-progress"]
    student = ["--model", str(write_student(tmp_path))]
    assert main(["pretrain", "--out", str(tmp_path / "alone"), *common, *student]) == 0
    assert main(["compress", "distill", "--teacher", str(trained_small), "--out", str(tmp_path / "kd"), "--alpha", "0.2",
                 *common, *student]) == 0
    from llmkit.checkpoint import load_checkpoint

    val = windows(prepared_data, "val", count=24)
    alone, kd = (perplexity(load_checkpoint(tmp_path / run / "final"), val) for run in ("alone", "kd"))
    print(f"student alone {alone:.2f}, distilled {kd:.2f}")
    assert kd < alone


def write_student(tmp_path):
    """A 2-layer, half-width student of the 4-layer teacher, as a config.json."""
    from llmkit.checkpoint.hf_config import to_hf_config
    from llmkit.model import named_config

    path = tmp_path / "student" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(to_hf_config(named_config("tiny-llama").replace(n_layer=2, d_model=64, d_ff=192))))
    return path


def test_hidden_state_matching_pairs_layers_and_matches_the_formula():
    from llmkit.model import build_model, named_config

    torch.manual_seed(0)
    teacher = build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu")  # 4 layers
    student = build_model(named_config("tiny-llama").replace(vocab_size=64, n_layer=2), "cpu")
    tokens = torch.randint(0, 64, (2, 6))
    targets = torch.randint(0, 64, (2, 6))
    with_hidden = LogitDistillation(teacher, alpha=0.5, temperature=1.0, hidden_weight=1.0)
    total, _ = with_hidden.loss(student, {"tokens": tokens, "targets": targets})
    plain, _ = LogitDistillation(teacher, alpha=0.5, temperature=1.0).loss(student, {"tokens": tokens, "targets": targets})
    s_hidden, t_hidden = [], []
    hooks = [layer.register_forward_hook(lambda m, a, o, store=store: store.append(o))
             for model, store in ((student, s_hidden), (teacher, t_hidden)) for layer in model.layers]
    student(tokens), teacher(tokens)
    for hook in hooks:
        hook.remove()
    norm = torch.nn.functional.normalize
    want = sum((norm(s_hidden[j], dim=-1) - norm(t_hidden[2 * j + 1], dim=-1)).pow(2).sum() for j in range(2)) / 2
    assert torch.allclose(total - plain, want, rtol=1e-4)


def test_attention_maps_match_the_models_attention_and_the_loss_formula():
    """The recomputed maps reproduce each layer's attention output; the loss follows its formula."""
    from llmkit.compress.distill import _attention_maps
    from llmkit.model import build_model, named_config

    torch.manual_seed(0)
    teacher = build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu")
    student = build_model(named_config("tiny-llama").replace(vocab_size=64, n_layer=2), "cpu")
    tokens, targets = torch.randint(0, 64, (2, 6)), torch.randint(0, 64, (2, 6))
    seen = {}

    def check(module, args, out):
        maps = _attention_maps(module, args[0], args[1])  # (B, H, T, T)
        v = module._heads(module.v_proj(args[0])).repeat_interleave(module.n_head // module.n_kv_head, 1)
        y = module.o_proj((maps @ v).transpose(1, 2).reshape(out.shape))
        seen["ok"] = torch.allclose(y, out, atol=1e-5)

    hook = teacher.layers[1].attn.register_forward_hook(check)
    teacher(tokens)
    hook.remove()
    assert seen["ok"]
    with_maps = LogitDistillation(teacher, alpha=0.5, temperature=1.0, attention_weight=1.0)
    total, _ = with_maps.loss(student, {"tokens": tokens, "targets": targets})
    plain, _ = LogitDistillation(teacher, alpha=0.5, temperature=1.0).loss(student, {"tokens": tokens, "targets": targets})
    s_maps, t_maps = [], []
    hooks = [layer.attn.register_forward_hook(lambda m, a, o, store=store: store.append(_attention_maps(m, a[0], a[1])))
             for model, store in ((student, s_maps), (teacher, t_maps)) for layer in model.layers]
    student(tokens), teacher(tokens)
    for h in hooks:
        h.remove()
    want = sum((s_maps[j] - t_maps[2 * j + 1]).pow(2).sum(-1).mean(1).sum() for j in range(2)) / 2
    assert torch.allclose(total - plain, want, rtol=1e-4)


def test_sequence_level_student_agrees_with_the_teacher_more(trained_small, prepared_data, tmp_path):
    """A student trained on the teacher's greedy continuations reproduces them more often than the same
    student trained on the data."""
    from llmkit.checkpoint import load_checkpoint
    from llmkit.decode import generate_ids

    common = ["--data", str(prepared_data), "--max-steps", "40", "--batch.seq_len", "48", "--batch.batch_size", "8",
              "--optim.lr", "3e-3", "--schedule.warmup-steps", "5", "--eval-every", "0", "--no-progress",
              "--model", str(write_student(tmp_path))]
    assert main(["pretrain", "--out", str(tmp_path / "alone"), *common]) == 0
    assert main(["compress", "distill", "--teacher", str(trained_small), "--out", str(tmp_path / "seq"),
                 "--sequence-level", "--prompt-len", "16", "--new-tokens", "16", *common]) == 0
    prompts = windows(prepared_data, "val", seq_len=16, count=16)[:, :16].tolist()
    teacher = generate_ids(load_checkpoint(trained_small), prompts, 12)

    def agreement(run):
        student = generate_ids(load_checkpoint(tmp_path / run / "final"), prompts, 12)
        pairs = [(a, b) for s, t in zip(student, teacher) for a, b in zip(s, t)]
        return sum(a == b for a, b in pairs) / max(len(pairs), 1)

    alone, seq = agreement("alone"), agreement("seq")
    print(f"greedy agreement with the teacher: data-trained {alone:.2f}, sequence-level {seq:.2f}")
    assert seq > alone
