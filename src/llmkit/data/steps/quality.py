"""Heuristic quality filters of the two published families.

Gopher (Rae et al. 2021, arXiv 2112.11446, appendix A): document-level bounds on words, word
length, symbols, bullets and ellipses, alphabetic words and stop words; repetition measured as
duplicate line/paragraph fractions and top/duplicated n-gram character fractions.
C4 (Raffel et al. 2020, arXiv 1910.10683): line-level cleaning (terminal punctuation, short lines,
javascript and policy lines) and document rules (lorem ipsum, curly braces, bad words, sentences).

Both rule sets were written for prose and remove source code (braces, symbols, lines without
terminal punctuation). With `keep_code` (for code-bearing corpora: documentation, Q&A, READMEs),
code lines (llmkit.data.steps.code_lines) are kept as they are and the rules measure the prose
lines only; a document that is mostly code is kept.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from llmkit.data.steps.base import Result, Step, drop, keep, words
from llmkit.data.steps.code_lines import code_flags, mostly_code, split_code
from llmkit.data.steps.wordlists import BAD_WORDS, load_word_list

BULLETS = ("•", "-", "*", "‣", "●", "▪", "◦", "–")
STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


@dataclass
class GopherOptions:
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    max_dup_line_frac: float = 0.3
    max_dup_para_frac: float = 0.3
    max_dup_line_char_frac: float = 0.2
    max_dup_para_char_frac: float = 0.2
    max_top_ngram_char_frac: dict[int, float] = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_char_frac: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    keep_code: bool = False  # measure the prose lines only; keep documents that are mostly code


def _duplicates(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts that repeat an earlier one, fraction of characters in them)."""
    seen, dup_count, dup_chars = set(), 0, 0
    for part in parts:
        if part in seen:
            dup_count, dup_chars = dup_count + 1, dup_chars + len(part)
        seen.add(part)
    total = sum(map(len, parts)) or 1
    return dup_count / max(1, len(parts)), dup_chars / total


def top_ngram_char_frac(tokens: list[str], n: int) -> float:
    grams = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return count * sum(map(len, gram)) / max(1, sum(map(len, tokens)))


def dup_ngram_char_frac(tokens: list[str], n: int) -> float:
    """Characters of words covered by n-grams that already occurred earlier in the document."""
    seen, covered = set(), [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i:i + n])
        if gram in seen:
            covered[i:i + n] = [True] * n
        seen.add(gram)
    return sum(len(t) for t, c in zip(tokens, covered) if c) / max(1, sum(map(len, tokens)))


class GopherFilter(Step):
    """Gopher rules: word/symbol/bullet/stop-word bounds and repetition (duplicate lines, n-grams)."""

    name = "gopher"
    Options = GopherOptions

    def __call__(self, text: str) -> Result:
        measured = text
        if self.options.keep_code:
            if mostly_code(text):
                return keep(text)
            measured = "\n".join(split_code(text)[0])
        reason = self.quality_reason(measured) or self.repetition_reason(measured)
        return drop(reason) if reason else keep(text)

    def quality_reason(self, text: str) -> str | None:
        o, tokens = self.options, words(text)
        n = len(tokens)
        if not o.min_words <= n <= o.max_words:
            return "gopher_word_count"
        if not o.min_mean_word_length <= sum(map(len, tokens)) / n <= o.max_mean_word_length:
            return "gopher_mean_word_length"
        if (text.count("#") + text.count("...") + text.count("…")) / n > o.max_symbol_word_ratio:
            return "gopher_symbol_ratio"
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if sum(ln.lstrip().startswith(BULLETS) for ln in lines) / len(lines) > o.max_bullet_lines_ratio:
            return "gopher_bullet_lines"
        if sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines) > o.max_ellipsis_lines_ratio:
            return "gopher_ellipsis_lines"
        if sum(any(c.isalpha() for c in t) for t in tokens) / n < o.min_alpha_words_ratio:
            return "gopher_alpha_words"
        if len(set(t.lower() for t in tokens) & set(STOP_WORDS)) < o.min_stop_words:
            return "gopher_stop_words"
        return None

    def repetition_reason(self, text: str) -> str | None:
        o = self.options
        lines = [ln for ln in text.split("\n") if ln.strip()]
        paragraphs = [p for p in re.split(r"\n{2,}", text) if p.strip()]
        line_frac, line_chars = _duplicates(lines)
        para_frac, para_chars = _duplicates(paragraphs)
        if line_frac > o.max_dup_line_frac or line_chars > o.max_dup_line_char_frac:
            return "gopher_dup_lines"
        if para_frac > o.max_dup_para_frac or para_chars > o.max_dup_para_char_frac:
            return "gopher_dup_paragraphs"
        tokens = words(text.lower())
        for n, limit in o.max_top_ngram_char_frac.items():
            if top_ngram_char_frac(tokens, int(n)) > limit:
                return f"gopher_top_{n}gram"
        for n, limit in o.max_dup_ngram_char_frac.items():
            if dup_ngram_char_frac(tokens, int(n)) > limit:
                return f"gopher_dup_{n}gram"
        return None


@dataclass
class C4Options:
    remove_no_terminal_punct_lines: bool = True
    min_words_per_line: int = 3
    min_sentences: int = 5
    filter_lorem_ipsum: bool = True
    remove_javascript_lines: bool = True
    filter_curly_brace: bool = True
    remove_policy_lines: bool = True
    bad_words_file: str | None = None  # one word per line; replaces the built-in list
    keep_code: bool = False  # code lines stay and are exempt from the line and brace rules


POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
TERMINAL = (".", "!", "?", '"', "'", "”", "’")


class C4Filter(Step):
    """C4 rules: line cleaning (punctuation, short, javascript, policy) and lorem/brace/bad-word/sentence rules."""

    name = "c4"
    Options = C4Options

    def setup(self) -> None:
        self.bad_words = load_word_list(self.options.bad_words_file, BAD_WORDS)

    def _keep_line(self, line: str) -> bool:
        o, lower = self.options, line.lower()
        if o.remove_javascript_lines and "javascript" in lower:
            return False
        if o.remove_policy_lines and any(p in lower for p in POLICY):
            return False
        if o.remove_no_terminal_punct_lines and not line.rstrip().endswith(TERMINAL):
            return False
        return len(line.split()) >= o.min_words_per_line

    def __call__(self, text: str) -> Result:
        o, lower = self.options, text.lower()
        if o.filter_lorem_ipsum and "lorem ipsum" in lower:
            return drop("c4_lorem_ipsum")
        if o.keep_code:
            return self._with_code(text)
        if o.filter_curly_brace and "{" in text:
            return drop("c4_curly_brace")
        if not hasattr(self, "bad_words"):
            self.setup()
        if self.bad_words & set(re.findall(r"[a-z']+", lower)):
            return drop("c4_bad_words")
        kept = "\n".join(ln for ln in text.split("\n") if ln.strip() and self._keep_line(ln.strip()))
        if len(re.findall(r"[.!?]+(?:\s|$)", kept)) < o.min_sentences:
            return drop("c4_too_few_sentences")
        return keep(kept)

    def _with_code(self, text: str) -> Result:
        """keep_code: fenced and code-shaped lines kept verbatim; prose lines cleaned as usual."""
        if not hasattr(self, "bad_words"):
            self.setup()
        lines = text.split("\n")
        flags = code_flags(lines)
        prose = [ln for ln, is_code in zip(lines, flags) if not is_code]
        if self.bad_words & set(re.findall(r"[a-z']+", "\n".join(prose).lower())):
            return drop("c4_bad_words")
        if mostly_code(text):
            return keep(text)
        kept = [is_code or bool(ln.strip() and self._keep_line(ln.strip())) for ln, is_code in zip(lines, flags)]
        kept_prose = "\n".join(ln for ln, k, is_code in zip(lines, kept, flags) if k and not is_code)
        if len(re.findall(r"[.!?]+(?:\s|$)", kept_prose)) < self.options.min_sentences:
            return drop("c4_too_few_sentences")
        return keep("\n".join(ln for ln, k in zip(lines, kept) if k))
