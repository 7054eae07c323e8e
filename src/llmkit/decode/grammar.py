"""Constrained decoding: a grammar compiled from a JSON schema (or a regex, or a list of choices)
masks each step's logits so that every reply parses (OpenAI's structured outputs, vLLM's guided
decoding). The grammar engine is llguidance (Microsoft's, the one vLLM and SGLang also ship):
it compiles the grammar, walks it token by token and computes the next-token mask in Rust.

    grammars = GrammarCompiler(tokenizer, vocab_size, stop_ids)     # once per engine (~0.1-1 s)
    matcher = grammars.matcher(Grammar("json_schema", schema))        # per request; LlmkitError if invalid
    allowed = grammars.masks([matcher, ...])                           # (B, V) bool, one pass for the batch
    matcher.consume_token(token)

A matcher allows the stop tokens only where the grammar may end, so a reply ends on a stop token
once its JSON is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import torch

from llmkit.errors import LlmkitError

# JSON without free whitespace between tokens: a model cannot spend its budget on blank lines
COMPILED_KEPT = 64  # compiled grammars kept for reuse (schemas repeat across an agent's requests)
COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class Grammar:
    """What a reply must match: a JSON schema (json_object is any object), a regex, or one of choices."""

    kind: Literal["json_object", "json_schema", "regex", "choice"]
    spec: Any = None  # the schema (dict), the pattern (str), the choices (list[str])


class GrammarCompiler:
    def __init__(self, tokenizer, vocab_size: int, stop_ids: set[int]):
        import llguidance

        if tokenizer is None or not hasattr(tokenizer, "backend"):
            raise LlmkitError("structured outputs need the checkpoint's tokenizer (tokenizer.json)")
        self.vocab_size = vocab_size
        stops = sorted(stop_ids) or [tokenizer.padding_id]
        self.tokenizer = llguidance.LLTokenizer(tokenizer.backend.to_str(), n_vocab=vocab_size, eos_token=stops)
        self.executor = llguidance.LLExecutor()
        self.words = (vocab_size + 31) // 32  # int32 words of a bitmask row
        self.compiled: dict[tuple[str, str], object] = {}  # (kind, spec) -> a matcher in its start state

    def grammar_text(self, grammar: Grammar) -> str:
        import llguidance

        if grammar.kind == "json_object":
            return llguidance.LLMatcher.grammar_from_json_schema({"type": "object"}, defaults=COMPACT_JSON)
        if grammar.kind == "json_schema":
            if not isinstance(grammar.spec, dict):
                raise LlmkitError("json_schema: the schema must be a JSON object")
            return llguidance.LLMatcher.grammar_from_json_schema(json.dumps(grammar.spec), defaults=COMPACT_JSON)
        if grammar.kind == "regex":
            return llguidance.LLMatcher.grammar_from_regex(str(grammar.spec))
        if grammar.kind == "choice":
            if not grammar.spec or not all(isinstance(c, str) for c in grammar.spec):
                raise LlmkitError("choice: give a non-empty list of strings")
            return llguidance.grammar_from("choice", json.dumps(list(grammar.spec)))
        raise LlmkitError(f"unknown grammar kind {grammar.kind!r}")

    def matcher(self, grammar: Grammar):
        """A fresh matcher for one request; a clear error when the grammar does not compile. A grammar
        is compiled once (the server's validation, the n siblings of a request and later requests
        with the same schema get copies of that matcher)."""
        key = (grammar.kind, json.dumps(grammar.spec, sort_keys=True, default=str))
        if key not in self.compiled:
            if len(self.compiled) >= COMPILED_KEPT:
                del self.compiled[next(iter(self.compiled))]  # the oldest
            self.compiled[key] = self._compile(grammar)
        return self.compiled[key].deep_copy()

    def _compile(self, grammar: Grammar):
        import llguidance

        try:
            text = self.grammar_text(grammar)
        except ValueError as error:
            raise LlmkitError(f"{grammar.kind}: {error}") from None
        problem = llguidance.LLMatcher.validate_grammar(text, self.tokenizer)
        if problem:
            raise LlmkitError(f"{grammar.kind}: {problem.strip()}")
        matcher = llguidance.LLMatcher(self.tokenizer, text, log_level=0)
        if matcher.is_error():
            raise LlmkitError(f"{grammar.kind}: {matcher.get_error()}")
        return matcher

    def masks(self, matchers: list) -> torch.Tensor:
        """(B, V) bool: the tokens each matcher allows next, computed for the batch in one call."""
        bits = torch.full((len(matchers), self.words), -1, dtype=torch.int32)  # (B, W)
        self.executor.unsafe_compute_mask_ptr([(m, i) for i, m in enumerate(matchers)], bits.data_ptr(),
                                              self.words * 4, len(matchers))
        shifts = torch.arange(32, dtype=torch.int32)
        allowed = (bits[:, :, None] >> shifts) & 1  # (B, W, 32): bit j of word w is token 32 w + j
        return allowed.view(len(matchers), -1)[:, : self.vocab_size].bool()
