"""Two of Llama 2's safety practices end to end from the CLI: context distillation (`llmkit finetune
--context-prompts`: a model that refuses harmful requests only behind the safety pre-prompt learns to
refuse without it) and safety RLHF (`llmkit reward train` on safety pairs, then `llmkit align --method
ppo --reward-model`)."""

import json

import pytest

from llmkit.cli import main
from llmkit.data.safety_sets import (
    REFUSAL,
    SAFETY_PREPROMPT,
    helpful_answer,
    split_prompts,
)
from llmkit.eval.safety import refusal_rates
from llmkit.infer.llm import LLM

COMMON = ["--method", "full", "--batch.batch_size", "8", "--batch.seq_len", "128", "--schedule.warmup-steps", "5",
          "--no-progress"]


def conditional_safety_data(path, split):
    """Refusal only behind the pre-prompt; help otherwise (the starting point context distillation needs)."""
    system = [{"role": "system", "content": SAFETY_PREPROMPT}]
    rows = []
    for harmful, pairs in ((True, split["train_harmful"]), (False, split["train_benign"])):
        for prompt, topic in pairs:
            user = [{"role": "user", "content": prompt}]
            rows.append({"messages": system + user + [{"role": "assistant", "content": REFUSAL if harmful else helpful_answer(topic)}]})
            rows.append({"messages": user + [{"role": "assistant", "content": helpful_answer(topic)}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow  # 400 steps of fine-tuning and generation: about 45 s
def test_context_distillation_moves_refusals_from_the_preprompt_into_the_model(tiny_checkpoint, tmp_path):
    split = split_prompts()
    held_harmful, held_benign = [p for p, _ in split["held_harmful"]], [p for p, _ in split["held_benign"]]
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data",
                 str(conditional_safety_data(tmp_path / "conditional.jsonl", split)), "--out", str(tmp_path / "start"),
                 "--max-steps", "300", "--optim.lr", "3e-3", *COMMON]) == 0
    start = LLM.load(tmp_path / "start" / "final")
    before = refusal_rates(start, held_harmful, held_benign)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p, _ in split["train_harmful"] + split["train_benign"]))
    assert main(["finetune", "--checkpoint", str(tmp_path / "start" / "final"), "--context-prompts", str(prompts),
                 "--out", str(tmp_path / "distilled"), "--max-steps", "100", "--optim.lr", "3e-3", *COMMON]) == 0
    records = [json.loads(line) for line in (tmp_path / "distilled" / "context_distillation.jsonl").read_text().splitlines()]
    assert all(r["messages"][0]["role"] == "user" for r in records)  # the pre-prompt is gone from the training data
    distilled = LLM.load(tmp_path / "distilled" / "final")
    after = refusal_rates(distilled, held_harmful, held_benign)
    seen_harmful, seen_benign = [p for p, _ in split["train_harmful"]], [p for p, _ in split["train_benign"]]
    seen_before, seen_after = (refusal_rates(m, seen_harmful, seen_benign) for m in (start, distilled))
    print("context distillation: distilled prompts", seen_before, seen_after, "unseen wordings", before, after)
    # on the distilled prompts, without the pre-prompt: refusals now come from the weights
    # (measured 2026-12-02 on 32 prompts each: refusal 0% -> 78%, over-refusal 0% -> 23%; the distilled
    # model can only be as good as its pre-prompted teacher, which refuses some benign look-alikes too)
    assert seen_before["refusal_rate"] <= 0.1 and seen_after["refusal_rate"] >= 0.6, (seen_before, seen_after)
    assert seen_after["refusal_rate"] - seen_after["over_refusal_rate"] >= 0.3, seen_after
    assert after["refusal_rate"] > before["refusal_rate"]  # and it carries over to an unseen wording


def coin_flip_safety_data(path, split):
    """Every prompt answered once with a refusal and once with help: a policy that refuses at random."""
    rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": answer}]}
            for pairs in (split["train_harmful"], split["train_benign"]) for p, topic in pairs
            for answer in (REFUSAL, helpful_answer(topic))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow  # SFT, a reward model and PPO end to end: about a minute and a half
def test_safety_rlhf_with_a_safety_reward_model(tiny_checkpoint, tmp_path):
    """Llama 2's safety RLHF, end to end: a safety reward model trained on safety pairs (accurate on
    held-out pairs), then PPO against it, which raises its reward on held-out prompts."""
    from llmkit.data.safety_sets import write_safety_sets

    split, sets = split_prompts(), write_safety_sets(tmp_path / "safety")
    assert main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data",
                 str(coin_flip_safety_data(tmp_path / "coin.jsonl", split)), "--out", str(tmp_path / "start"),
                 "--max-steps", "100", "--optim.lr", "3e-3", *COMMON]) == 0
    assert main(["reward", "train", "--checkpoint", str(tmp_path / "start" / "final"), "--data", str(sets["preferences"]),
                 "--out", str(tmp_path / "rm"), "--max-steps", "100", "--batch.batch_size", "8", "--batch.seq_len", "128",
                 "--optim.lr", "3e-3", "--held-out", "0.2", "--schedule.warmup-steps", "100", "--no-progress"]) == 0
    assert json.loads((tmp_path / "rm" / "summary.json").read_text())["pairwise_accuracy_after"] >= 0.8
    rm_run = ppo(tmp_path, sets, "rm_ppo", "--reward-model", str(tmp_path / "rm" / "final"))
    # PPO raises the safety reward model's score (on held-out prompts). On this tiny model it does so
    # partly by reward hacking: off-distribution text the small reward model over-scores.
    # Seeds 0-3 on this setup (start model and reward model as here): at lr 1e-2 the held-out reward rose
    # by 0.20, 1.00, 0.39, 0.39; at 3e-2 it moved by -2.5 to +4.0 (rollouts sampled differently swing
    # it either way), so the rate is the stable one and the bound sits below the smallest rise.
    assert rm_run["mean_reward_after"] > rm_run["mean_reward_before"] + 0.15
    print("safety RLHF", rm_run)


def ppo(tmp_path, sets, name, *reward):
    assert main(["align", "--method", "ppo", "--checkpoint", str(tmp_path / "start" / "final"), "--data",
                 str(sets["rl_prompts"]), *reward, "--out", str(tmp_path / name), "--max-steps", "60",
                 "--batch.batch_size", "8", "--max-new-tokens", "48", "--optim.lr", "1e-2", "--kl-coef", "0.01",
                 "--schedule.kind", "constant", "--schedule.warmup-steps", "100", "--held-out", "0.25", "--no-progress",
                 "--lora.target-modules", "q_proj", "v_proj", "up_proj", "down_proj"]) == 0
    return json.loads((tmp_path / name / "summary.json").read_text())
