"""A lightweight language identifier with no model download: the script of the letters decides
non-Latin languages; among Latin-script languages, the share of each language's most frequent
function words does (the stop-word method of Grefenstette 1995).

Source code is not scored: code lines (llmkit.data.steps.code_lines) are set aside first, so a
docstring or README keeps its prose's language, and a document that is mostly code is "code".
Single-letter words do not vote (a, e, i, y are stop words of several languages and, in code and
formulas, variable names); nor do words inside identifiers (snake_case, dotted.names)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.data.steps.code_lines import mostly_code, split_code

STOP_WORDS = {
    # English also lists the function words of technical prose (into, when, each, should, ...): API
    # documentation has few of the classic ones
    "en": "the of and to in is it that for on with as was by be are this not or from at which an have but you they "
          "his all were can has its if will into when then than each only also should must may does how more any "
          "one out we your our there these those what",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus er hat dass sie nach wird bei einer um",
    "fr": "le de la et les des en un du une que est pour qui dans par sur au pas plus il ne se ce avec sont ou aux elle son mais nous vous",
    "es": "de la que el en y a los se del las un por con no una su para es al lo como más pero sus le ya o fue este ha sí porque esta entre",
    "it": "di e il la che in a per un è del non sono le con si da una dei al come anche nel alla più ma ha gli della questo",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao ele das tem à seu sua",
    "nl": "de en van het een in is dat op te zijn met voor niet aan er die om ook als bij door maar uit over dan nog wel",
}
SCRIPTS = [  # (language or script code, regex of its letters)
    ("zh", r"[\u4e00-\u9fff]"), ("ja", r"[\u3040-\u30ff]"), ("ko", r"[\uac00-\ud7af]"),
    ("ru", r"[\u0400-\u04ff]"), ("ar", r"[\u0600-\u06ff]"), ("el", r"[\u0370-\u03ff]"),
    ("he", r"[\u0590-\u05ff]"), ("hi", r"[\u0900-\u097f]"), ("th", r"[\u0e00-\u0e7f]"),
]
WORD = re.compile(r"(?<![\w.])[^\W\d_]{2,}(?![\w(]|\.\w)", re.UNICODE)  # whole words, not identifier parts


def identify(text: str) -> tuple[str, float]:
    """(language code, score in [0, 1]); "code" for mostly source code; "unknown" when there are no
    letters to go on."""
    sample = text[:5000]
    if mostly_code(sample, share=0.7):
        return "code", 1.0
    sample = "\n".join(split_code(sample)[0])
    letters = sum(ch.isalpha() for ch in sample)
    if not letters:
        return "unknown", 0.0
    for code, pattern in SCRIPTS:
        share = len(re.findall(pattern, sample)) / letters
        if share > 0.5:
            return code, share
    tokens = [w.lower() for w in WORD.findall(sample)]
    if not tokens:
        return "unknown", 0.0
    shares = {lang: sum(t in vocab for t in tokens) / len(tokens) for lang, vocab in _VOCABS.items()}
    best = max(shares, key=shares.get)
    return best, shares[best]


_VOCABS = {lang: frozenset(words.split()) for lang, words in STOP_WORDS.items()}


@dataclass
class LanguageOptions:
    languages: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.15  # Latin-script score: share of tokens that are the language's stop words
    keep_code: bool = True  # keep documents that are mostly source code (identified as "code")


class LanguageFilter(Step):
    """Keep documents in the listed languages (script + stop-word identifier, no download)."""

    name = "language"
    Options = LanguageOptions

    def __call__(self, text: str) -> Result:
        language, score = identify(text)
        if language == "code" and self.options.keep_code:
            return keep(text)
        if language not in self.options.languages:
            return drop(f"language_{language}")
        return keep(text) if score >= self.options.min_score else drop("language_low_score")
