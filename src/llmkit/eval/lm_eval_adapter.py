"""llmkit as a model of lm-evaluation-harness (`--model llmkit`), so its task library and the users'
own task YAMLs run on llmkit checkpoints, compressed ones included:

    llmkit lm-eval run --model llmkit --model_args checkpoint=runs/demo/dpo/final \\
        --tasks my_task --include_path my_tasks/ --output_path runs/lm-eval

`llmkit lm-eval` registers the model and hands every argument to lm-eval's own command line
(lm-eval finds models by import, not by plugin entry point). From Python: import this module, then
`lm_eval.simple_evaluate(model="llmkit", model_args="checkpoint=DIR", ...)`.

The three request kinds map onto llmkit.eval.loglikelihood and the batched generation code, with
lm-eval's conventions: context and continuation are tokenized together and split at the context's
length; an empty context starts from the end-of-text (or BOS) token; generation stops at the
request's `until` strings.
"""

from __future__ import annotations

import sys

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from llmkit.decode import SamplingParams, generate_ids
from llmkit.decode.stops import cut_at_stops
from llmkit.errors import LlmkitError
from llmkit.eval.loglikelihood import (
    continuation_loglikelihoods,
    encode_pair,
    rolling_loglikelihoods,
)
from llmkit.infer.llm import LLM


@register_model("llmkit")
class LlmkitLM(LM):
    def __init__(self, checkpoint: str | None = None, batch_size: int | str = 16, device: str = "cpu",
                 max_gen_toks: int = 256, **_ignored):
        super().__init__()
        if checkpoint is None:
            raise LlmkitError("pass the checkpoint: --model_args checkpoint=DIR")
        if not device or (device.startswith("cuda") and not torch.cuda.is_available()):
            device = "cpu"  # lm-eval passes its default "cuda" on every machine (its own HF model falls back too)
        self.llm = LLM.load(checkpoint, device=device)
        self.tokenizer = self.llm.tokenizer
        self.batch = 16 if str(batch_size).startswith("auto") else int(batch_size)
        self.max_gen_toks = int(max_gen_toks)
        prefix = self.tokenizer.bos_id if self.tokenizer.bos_id is not None else self.tokenizer.eos_id
        self.prefix_id = 0 if prefix is None else prefix

    def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:
            return [self.prefix_id], self.tokenizer.encode(continuation, add_special_tokens=False)
        return encode_pair(self.tokenizer, context, continuation, add_special_tokens=False)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._pair(*request.args[:2]) for request in requests]
        return continuation_loglikelihoods(self.llm.model, pairs, self.batch)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        texts = [self.tokenizer.encode(request.args[0], add_special_tokens=False) for request in requests]
        return [total for total, _ in rolling_loglikelihoods(self.llm.model, texts, self.prefix_id, None, self.batch)]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Requests with the same stop strings, length and temperature go to the Engine together;
        it keeps up to `batch_size` of them decoding at once, refilling a row as soon as one ends."""
        groups: dict[tuple, list[int]] = {}
        prompts = []
        for index, request in enumerate(requests):
            context, options = request.args[0], dict(request.args[1])
            until = options.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            temperature = float(options.get("temperature", 0.0)) if options.get("do_sample") else 0.0
            key = (until, int(options.get("max_gen_toks", self.max_gen_toks)), temperature)
            prompts.append(self.tokenizer.encode(context, add_special_tokens=False) or [self.prefix_id])
            groups.setdefault(key, []).append(index)
        outputs: list[str | None] = [None] * len(requests)
        for (until, max_new, temperature), indices in groups.items():
            params = SamplingParams(temperature=temperature, stop=list(until))
            generated = generate_ids(self.llm.model, [prompts[i] for i in indices], max_new, params,
                                     self.llm.stop_ids, self.tokenizer, self.batch)
            for i, ids in zip(indices, generated, strict=True):
                outputs[i] = cut_at_stops(self.tokenizer.decode(ids), until)
        return outputs


def cli(argv: list[str], prog: str = "llmkit lm-eval") -> None:
    """Run lm-evaluation-harness's command line with the llmkit model registered."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm-eval", *argv]
    cli_evaluate()
