"""Run evaluation tasks on a loaded model, each scored the way lm-evaluation-harness scores its kind:

- perplexity: rolling log-likelihood of each text (sliding window, `stride`): token perplexity,
  word perplexity and bits per byte (byte count of the UTF-8 text, so tokenizers compare fairly);
- multiple_choice: the log-likelihood of each choice after the context; acc picks the highest,
  acc_norm the highest per character of the choice (lm-eval's length normalisation); with one
  context per choice (WinoGrande), the shared continuation after each context; records with
  `labels` (TruthfulQA MC2) also get mc2, the probability mass on the true answers;
- generate: greedy continuation cut at the stop strings, the answer extracted by the task's regex
  (the chain-of-thought "the answer is ..." with --cot), scored by exact match / F1 / ROUGE-L /
  BLEU / chrF; with self-consistency (Wang et al., arXiv 2203.11171) N sampled continuations per
  question and the majority answer is scored;
- code: sampled completions run by llmkit.eval.code_exec in a sandbox, scored pass@k;
- canary, bias, refusal, safety_probes: llmkit.eval.security and llmkit.eval.safety.

Mean metrics carry their standard error (sample standard deviation / sqrt(n)). With `perturb` > 0
multiple-choice and generative tasks are scored again on questions with character-level typos.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llmkit.decode.sampling_params import SamplingParams
from llmkit.eval.generation import generate_texts, progress_bar
from llmkit.eval.loglikelihood import (
    continuation_loglikelihoods,
    encode_pair,
    rolling_loglikelihoods,
)
from llmkit.eval.metrics import (
    CORPUS,
    PER_EXAMPLE,
    extract_answer,
    squad_normalise,
)
from llmkit.eval.prompting import (
    COT_ANSWER_REGEX,
    PromptOptions,
    build_context,
    build_contexts,
    choice_continuation,
)
from llmkit.eval.safety import refusal_rates
from llmkit.eval.security import bias_gaps, canary_leakage, perturb_characters
from llmkit.eval.task_spec import TaskSpec

SHOWN = 5  # samples kept per task in the results


@dataclass
class EvalOptions:
    prompt: PromptOptions = field(default_factory=PromptOptions)
    self_consistency: int = 0  # N >= 1: sample N continuations at `temperature`, score the majority (0: greedy)
    temperature: float = 0.7  # for self-consistency samples
    batch_size: int = 16
    limit: int | None = None  # records per task
    stride: int | None = None  # perplexity window stride (default: the model's context)
    perturb: float = 0.0  # character typo rate for the robustness re-run
    max_new_tokens: int | None = None  # override the task's (chain of thought defaults to 4x)
    progress: bool = False  # a progress bar per task
    samples: int = 1  # code tasks: completions per problem (pass@k for every k <= samples in 1, 10, 100)
    code_timeout: float = 10.0  # code tasks: seconds each program may run


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def _summarise(per_example: dict[str, list[float]]) -> tuple[dict, dict]:
    metrics, stderr = {}, {}
    for name, values in per_example.items():
        metrics[name], stderr[name] = _mean_and_stderr(values)
    return metrics, stderr


def _perplexity(llm, task: TaskSpec, records: list[dict], options: EvalOptions) -> dict:
    tokenizer = llm.tokenizer
    texts = [str(r[task.text_field]) for r in records]
    prefix = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    with progress_bar(task, options, None, "window") as bar:
        scored = rolling_loglikelihoods(llm.model, [tokenizer.encode(t, add_special_tokens=False) for t in texts],
                                        prefix, options.stride, options.batch_size, progress=bar.update)
    logprob, tokens = sum(s for s, _ in scored), sum(n for _, n in scored)
    words, nbytes = sum(len(t.split()) for t in texts), sum(len(t.encode()) for t in texts)
    return {"metrics": {"token_perplexity": math.exp(-logprob / tokens), "word_perplexity": math.exp(-logprob / words),
                        "bits_per_byte": -logprob / math.log(2) / nbytes}, "n": len(texts), "tokens": tokens}


def _choice_requests(llm, task: TaskSpec, record: dict, index: int, options: EvalOptions, transform) -> list:
    """(context ids, continuation ids) per choice: each choice after the context, or, with one
    context per choice, the record's continuation after each."""
    chat, choices = options.prompt.chat, task.choice_texts(record)
    if task.multiple_input:
        contexts = build_contexts(task, record, index, options.prompt, llm.tokenizer, transform, choices)
        continuation = choice_continuation(task, str(record["continuation"]), chat)
        return [encode_pair(llm.tokenizer, c, continuation, not chat) for c in contexts]
    context = build_context(task, record, index, options.prompt, llm.tokenizer, transform)
    return [encode_pair(llm.tokenizer, context, choice_continuation(task, c, chat), not chat) for c in choices]


def _mc2(lls: list[float], labels: list[int]) -> float:
    """TruthfulQA MC2: the normalised probability mass of the true answers."""
    top = max(lls)
    probs = [math.exp(ll - top) for ll in lls]  # the shift cancels in the ratio
    return sum(p for p, label in zip(probs, labels) if label) / sum(probs)


def _multiple_choice(llm, task: TaskSpec, records: list[dict], options: EvalOptions, transform) -> dict:
    requests, spans = [], []
    for index, record in enumerate(records):
        choices = task.choice_texts(record)
        spans.append((len(requests), choices))
        requests += _choice_requests(llm, task, record, index, options, transform)
    with progress_bar(task, options, len(requests), "choice") as bar:
        scores = [ll for ll, _ in continuation_loglikelihoods(llm.model, requests, options.batch_size,
                                                              progress=bar.update)]
    per_example, samples = {"acc": []} if task.multiple_input else {"acc": [], "acc_norm": []}, []
    for record, (start, choices) in zip(records, spans):
        lls = scores[start: start + len(choices)]
        gold = task.gold_index(record)
        best = max(range(len(choices)), key=lambda i: lls[i])
        per_example["acc"].append(float(best == gold))
        if not task.multiple_input:
            best_norm = max(range(len(choices)), key=lambda i: lls[i] / max(len(choices[i]), 1))
            per_example["acc_norm"].append(float(best_norm == gold))
        if "labels" in record:
            per_example.setdefault("mc2", []).append(_mc2(lls, record["labels"]))
        if len(samples) < SHOWN:
            question = record["continuation"] if task.multiple_input else task.render(task.prompt, record)
            samples.append({"question": question, "choices": choices, "gold": gold, "predicted": best,
                            "loglikelihoods": lls})
    metrics, stderr = _summarise(per_example)
    return {"metrics": metrics, "stderr": stderr, "n": len(records), "samples": samples}


def _vote(answers: list[str]) -> str:
    """The most common answer after normalisation (ties: the one seen first, as most_common keeps
    first-seen order among equal counts)."""
    normalised = [squad_normalise(a) for a in answers]
    winner = Counter(normalised).most_common(1)[0][0]
    return answers[normalised.index(winner)]


def _generate(llm, task: TaskSpec, records: list[dict], options: EvalOptions, transform) -> dict:
    tokenizer, prompt_options = llm.tokenizer, options.prompt
    samples_per_question = max(1, options.self_consistency)
    cot = prompt_options.cot
    max_new = options.max_new_tokens or task.max_new_tokens * (4 if cot else 1)
    stops = [task.fewshot_separator] if cot else task.stop  # a worked solution may span lines
    regex = task.answer_regex or (COT_ANSWER_REGEX if cot else None)
    sampled = options.self_consistency > 0
    params = SamplingParams(temperature=options.temperature if sampled else 0.0, seed=prompt_options.seed,
                            n=samples_per_question, stop=list(stops))
    contexts = [build_context(task, r, i, prompt_options, tokenizer, transform) for i, r in enumerate(records)]
    groups = generate_texts(llm, task, contexts, params, max_new, options)
    per_example = {m: [] for m in task.metrics if m in PER_EXAMPLE} if task.scorer is None else {}
    predictions, references, samples = [], [], []
    for i, record in enumerate(records):
        group = groups[i]
        if task.scorer is not None:  # a benchmark scored as published (its own extraction and match)
            for name, value in task.scorer(group[0], record).items():
                per_example.setdefault(name, []).append(value)
            if len(samples) < SHOWN:
                samples.append({"prompt": contexts[i], "output": group[0]})
            continue
        answer = _vote([extract_answer(t, regex) for t in group])
        refs = task.references(record)
        predictions.append(answer)
        references.append(refs)
        for name in per_example:
            per_example[name].append(PER_EXAMPLE[name](answer, refs))
        if len(samples) < SHOWN:
            samples.append({"prompt": contexts[i], "output": group[0], "answer": answer, "references": refs})
    metrics, stderr = _summarise(per_example) if per_example else ({}, {})
    for name in task.metrics if task.scorer is None else []:
        if name in CORPUS:
            metrics[name] = CORPUS[name](predictions, references)
    return {"metrics": metrics, "stderr": stderr, "n": len(records), "samples": samples}


def _refusal(llm, task: TaskSpec, records: list[dict]) -> dict:
    harmful = [r["prompt"] for r in records if r.get("harmful")]
    benign = [r["prompt"] for r in records if not r.get("harmful")]
    return {"metrics": refusal_rates(llm, harmful, benign), "n": len(records)}


RUNNERS: dict[str, Callable] = {"multiple_choice": _multiple_choice, "generate": _generate}


def evaluate_task(llm, task: TaskSpec, options: EvalOptions) -> dict:
    """{"task", "type", "n", "metrics", "stderr", "samples", ...} for one task."""
    records = task.records[: options.limit] if options.limit else task.records
    if options.prompt.shots is None:  # the task's own default (a benchmark's published number of shots)
        options = replace(options, prompt=replace(options.prompt, shots=task.default_shots))
    if task.type == "perplexity":
        result = _perplexity(llm, task, records, options)
    elif task.type == "canary":
        result = canary_leakage(llm, records, batch_size=options.batch_size)
    elif task.type == "bias":
        result = bias_gaps(llm, records, options.batch_size)
    elif task.type == "refusal":
        result = _refusal(llm, task, records)
    elif task.type == "safety_probes":
        from llmkit.eval.safety_probes import probe_rates

        result = probe_rates(llm, records)
    elif task.type == "code":
        from llmkit.eval.code_exec import evaluate_code

        result = evaluate_code(llm, task, records, options)
    else:
        result = RUNNERS[task.type](llm, task, records, options, None)
        if options.perturb > 0:
            rng = random.Random(options.prompt.seed)
            noisy = RUNNERS[task.type](llm, task, records, options,
                                       lambda text: perturb_characters(text, options.perturb, rng))
            for name, value in noisy["metrics"].items():
                result["metrics"][f"{name}@typos"] = value
                result["metrics"][f"{name}_drop"] = result["metrics"][name] - value
    group = {"group": task.group} if task.group else {}
    return {"task": task.name, "type": task.type, **group, "shots": options.prompt.shots, **result}
