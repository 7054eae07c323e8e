"""The curation steps, by name. Steps that need a tokenizer or a model live in those layers and
are registered here by dotted path, so importing `llmkit.data` never imports them."""

from __future__ import annotations

import difflib
import importlib

from llmkit.errors import LlmkitError

STEPS: dict[str, str] = {
    "html_extract": "llmkit.data.steps.web:HtmlExtract",
    "url_filter": "llmkit.data.steps.web:UrlFilter",
    "normalize": "llmkit.data.steps.normalize:Normalize",
    "language": "llmkit.data.steps.language:LanguageFilter",
    "gopher": "llmkit.data.steps.quality:GopherFilter",
    "c4": "llmkit.data.steps.quality:C4Filter",
    "classifier": "llmkit.data.steps.classifier:ClassifierFilter",
    "perplexity": "llmkit.eval.perplexity_filter:PerplexityFilter",
    "toxicity": "llmkit.data.steps.toxicity:ToxicityFilter",
    "bias": "llmkit.data.steps.bias:BiasFilter",
    "exact_dedup": "llmkit.data.steps.dedup:ExactDedup",
    "near_dedup": "llmkit.data.steps.minhash:NearDedup",
    "pii": "llmkit.data.steps.pii:PiiScrubber",
    "decontaminate": "llmkit.data.steps.decontaminate:Decontaminate",
    "tokenize": "llmkit.tokenizer.pack:Tokenize",
}
# What runs when no --steps/--config says otherwise; classifier and perplexity need a model first.
# html_extract and url_filter pass records that are not web pages unchanged.
DEFAULT_STEPS = ["html_extract", "url_filter", "normalize", "language", "gopher", "c4", "toxicity", "bias", "exact_dedup", "near_dedup", "pii",
                 "decontaminate", "tokenize"]


def step_class(name: str):
    if name not in STEPS:
        close = difflib.get_close_matches(name, STEPS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise LlmkitError(f"unknown step {name!r}.{hint} `llmkit data steps` lists them all.")
    module, attr = STEPS[name].split(":")
    return getattr(importlib.import_module(module), attr)
