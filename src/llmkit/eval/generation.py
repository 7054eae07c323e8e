"""Batched generation for evaluation tasks (generative and code benchmarks): prompts encoded as
the task's chat setting asks, n continuations each, cut at the stop strings, with a progress bar."""

from __future__ import annotations

from llmkit.decode.generate import generate_ids
from llmkit.decode.sampling_params import SamplingParams
from llmkit.decode.stops import cut_at_stops
from llmkit.eval.task_spec import TaskSpec


def progress_bar(task: TaskSpec, options, total: int | None, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=task.name, unit=unit, leave=False, disable=not options.progress)


def encode_prompt(tokenizer, text: str, chat: bool) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=not chat)  # a chat template writes its own BOS


def generate_texts(llm, task: TaskSpec, contexts: list[str], params: SamplingParams, max_new: int,
                   options) -> list[list[str]]:
    """params.n continuations of each context, cut at params.stop, in batches of about
    options.batch_size sequences (with a progress bar)."""
    tokenizer, n = llm.tokenizer, params.n
    prompts = [encode_prompt(tokenizer, c, options.prompt.chat) for c in contexts]
    per_batch, outputs = max(1, options.batch_size // n), []
    with progress_bar(task, options, len(prompts) * n, "sample") as bar:
        for start in range(0, len(prompts), per_batch):
            batch = prompts[start: start + per_batch]
            outputs += generate_ids(llm.model, batch, max_new, params, llm.stop_ids, tokenizer)
            bar.update(len(batch) * n)
    texts = [cut_at_stops(tokenizer.decode(out), params.stop) for out in outputs]
    return [texts[i * n: (i + 1) * n] for i in range(len(prompts))]
