"""PPO and GRPO from `llmkit align`: held-out mean reward rises; GAE and the clipped objective match
their formulas."""

import json

import pytest
import torch

from llmkit.cli import main
from llmkit.finetune.ppo import PPOSettings, PPOTask, gae
from llmkit.finetune.verifiable_rewards import (
    answer_prefix,
    contains_answer,
    exact_match,
    resolve_reward_fn,
)


def share_of_e(completion: str, record: dict) -> float:
    """Verifiable: the share of the letter 'e' among the completion's letters."""
    letters = [c for c in completion if c.isalpha()]
    return sum(c == "e" for c in letters) / len(letters) if letters else 0.0


def write_prompts(path, n=40):
    path.write_text("".join(json.dumps({"prompt": f"Write something {i}"}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("method,lr", [("ppo", 3e-2), ("grpo", 2e-2)])
def test_rl_raises_held_out_mean_reward(tiny_checkpoint, tmp_path, method, lr):
    out = tmp_path / method
    assert main(["align", "--checkpoint", str(tiny_checkpoint), "--data", str(write_prompts(tmp_path / "p.jsonl")),
                 "--out", str(out), "--method", method, "--reward-fn", "tests.finetune.test_rl:share_of_e",
                 "--max-steps", "80" if method == "ppo" else "40", "--batch.batch_size", "8", "--max-new-tokens", "12", "--optim.lr", str(lr),
                 "--schedule.kind", "constant", "--schedule.warmup-steps", "1", "--held-out", "0.2",
                 "--kl-coef", "0.01", "--no-progress",
                 "--lora.target-modules", "q_proj", "v_proj", "up_proj", "down_proj"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    print(method, summary["mean_reward_before"], summary["mean_reward_after"])
    assert summary["prompts_held_out"] == 8
    assert summary["mean_reward_after"] > max(3 * summary["mean_reward_before"], summary["mean_reward_before"] + 0.08)
    assert (out / "final" / "model.safetensors").is_file()


def gae_reference(rewards, values, gamma, lam):
    """Direct float64 sum: A_t = sum_l (gamma lam)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t."""
    T = len(rewards)
    v = list(values) + [0.0]
    deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(T)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(T - t)) for t in range(T)]


def test_gae_matches_the_direct_sum_over_completion_tokens():
    torch.manual_seed(0)
    rewards, values = torch.randn(2, 7, dtype=torch.float64), torch.randn(2, 7, dtype=torch.float64)
    keep = torch.tensor([[0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1, 1]], dtype=torch.float64)  # prompt, completion, pad
    got = gae(rewards * keep, values, keep, gamma=0.9, lam=0.8)
    for row in range(2):
        idx = keep[row].nonzero().flatten().tolist()
        want = gae_reference(rewards[row, idx].tolist(), values[row, idx].tolist(), 0.9, 0.8)
        assert torch.allclose(got[row, idx], torch.tensor(want, dtype=torch.float64), atol=1e-12)
        assert (got[row][keep[row] == 0] == 0).all()


class _Critic(torch.nn.Module):
    """Logits from a free parameter, values zero: isolates the clipped policy term."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, tokens, with_values=False):
        return self.logits, torch.zeros(tokens.shape)


def test_clipped_objective_stops_the_gradient_outside_the_trust_region():
    logits = torch.zeros(1, 2, 3)
    targets = torch.tensor([[0, 1]])
    logp_now = torch.log_softmax(logits, -1)[0, [0, 1], [0, 1]]  # log(1/3) at both positions
    batch = {"tokens": torch.zeros(1, 2, dtype=torch.long), "completion_targets": targets,
             "advantages": torch.tensor([[1.0, 1.0]]), "returns": torch.zeros(1, 2), "old_values": torch.zeros(1, 2),
             # position 0: ratio 2 (past 1 + clip with A > 0: clipped, no gradient); position 1: ratio 1
             "old_logp": torch.stack([logp_now[0] - torch.log(torch.tensor(2.0)), logp_now[1]])[None]}
    task = PPOTask.__new__(PPOTask)
    task.settings, task.last_stats = PPOSettings(clip=0.2), {}
    model = _Critic(logits.clone())
    loss, count = task.loss(model, batch)
    loss.backward()
    assert count == 1
    assert torch.allclose(loss, torch.tensor(-(1.2 + 1.0) / 2))  # mean of -min(rA, clip(r)A)
    assert model.logits.grad[0, 0].abs().sum() == 0 and model.logits.grad[0, 1].abs().sum() > 0
    assert task.last_stats["clip_fraction"] == pytest.approx(0.5)


def test_built_in_rewards():
    record = {"prompt": "2+2=", "answer": "4"}
    assert exact_match(" 4 ", record) == 1 and exact_match("4 apples", record) == 0
    assert contains_answer("it is 4.", record) == 1 and contains_answer("it is 14", record) == 0
    assert answer_prefix("4", {"answer": "42"}) == 0.5
    assert resolve_reward_fn("tests.finetune.test_rl:share_of_e") is share_of_e
    with pytest.raises(Exception, match="unknown reward"):
        resolve_reward_fn("nope")
