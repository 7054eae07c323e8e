"""`llmkit align` on a synthetic preference set where the chosen answer is verifiably better (the
rejected one ends with a junk word): held-out preference accuracy rises from 0 to >= 80%."""

import json

import pytest

from llmkit.cli import main

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda", "zeta", "iota", "rho"]
JUNK = ["banana", "xylophone", "zzz"]


def write_prefs(path, n=60):
    with path.open("w") as f:
        for i in range(n):
            word = WORDS[i % len(WORDS)]
            f.write(json.dumps({"prompt": f"Repeat the word: {word}", "chosen": f"{word} {word}",
                                "rejected": f"{word} {JUNK[i % len(JUNK)]}"}) + "\n")
    return path


@pytest.mark.parametrize("method,lr", [("dpo", 3e-3), ("simpo", 3e-3), ("ipo", 1e-3), ("orpo", 3e-3)])
def test_alignment_raises_held_out_preference_accuracy(tiny_checkpoint, tmp_path, method, lr):
    data = write_prefs(tmp_path / "prefs.jsonl")
    out = tmp_path / method
    assert main(["align", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--out", str(out),
                 "--method", method, "--max-steps", "30", "--batch.batch_size", "8", "--batch.seq_len", "64",
                 "--optim.lr", str(lr), "--schedule.warmup-steps", "2", "--held-out", "0.25", "--no-progress",
                 "--lora.target-modules", "q_proj", "v_proj", "up_proj", "down_proj"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs_held_out"] == 15
    assert summary["preference_accuracy_after"] >= 0.8
    assert summary["preference_accuracy_after"] > summary["preference_accuracy_before"]
    assert (out / "final" / "model.safetensors").is_file() and (out / "adapter" / "adapter_config.json").is_file()


def test_rl_methods_run_from_the_library_without_a_generation_function(tiny_checkpoint, tmp_path):
    """Rollouts decode through llmkit.decode directly: nothing has to be handed in by the CLI."""
    from llmkit.finetune.align import AlignConfig, run_align

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {w}", "answer": w}) + "\n" for w in WORDS))
    summary = run_align(AlignConfig(checkpoint=str(tiny_checkpoint), data=str(data),
                                    method="grpo", out=str(tmp_path / "run"), max_steps=1, max_new_tokens=4,
                                    group_size=2))
    assert summary["steps"] == 1 and (tmp_path / "run" / "final").is_dir()
