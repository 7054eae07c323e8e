"""The sampling function the RL tasks (llmkit.finetune.ppo, .grpo) roll out with: the generation
code of this layer, in the signature those tasks take (they sit below inference, so the CLI
hands this in)."""

from __future__ import annotations

from llmkit.infer.generate import generate_ids
from llmkit.infer.sampling import SamplingConfig


def sample_completions(model, prompts: list[list[int]], max_new_tokens: int, temperature: float, seed: int,
                       stop_ids: set[int], pad_id: int) -> list[list[int]]:
    """New token ids per prompt; temperature 0 decodes greedily."""
    return generate_ids(model, prompts, max_new_tokens, SamplingConfig(temperature=temperature, seed=seed),
                        stop_ids, pad_id)
