"""Representation bias: flag (or drop) documents that demean a group of people, with counts per
category in stats.json. The survey's data-preparation stage names bias removal next to toxicity
(arXiv 2401.02038, sec. 3.1); this is the lexicon method (e.g. the word lists behind Dodge et al.'s
C4 audit, arXiv 2104.08758), kept replaceable because every such list encodes choices.

A lexicon names, per category, the groups, and lists demeaning predicates; a match is a group
followed by a copula and a predicate ("<group> are <predicate>", "all <group> are ..."), or a
standalone term a user's lexicon lists for a category (the built-in one ships no slurs). Neutral
mentions ("women are underrepresented in the data") do not match.

Lexicon file (YAML or JSON):

    categories:
      religion: {groups: [muslims, christians, jews, hindus, atheists], terms: []}
    predicates: [inferior, subhuman, vermin, stupid, ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llmkit.data.steps.base import Result, Step, drop, keep
from llmkit.errors import LlmkitError

BUILT_IN = {
    "categories": {
        "gender": {"groups": ["women", "men", "girls", "boys", "females", "males", "wives", "mothers"]},
        "sexual_orientation": {"groups": ["gays", "gay people", "lesbians", "homosexuals", "bisexuals"]},
        "gender_identity": {"groups": ["trans people", "transgender people", "nonbinary people"]},
        "religion": {"groups": ["muslims", "christians", "jews", "hindus", "buddhists", "sikhs", "atheists", "catholics"]},
        "ethnicity_nationality": {"groups": ["immigrants", "refugees", "migrants", "foreigners", "africans", "asians",
                                             "arabs", "mexicans", "chinese people", "black people", "white people",
                                             "latinos", "roma"]},
        "disability": {"groups": ["disabled people", "the disabled", "autistic people", "blind people", "deaf people"]},
        "age": {"groups": ["old people", "the elderly", "boomers", "teenagers"]},
    },
    "predicates": ["inferior", "subhuman", "vermin", "parasites", "animals", "savages", "stupid", "dumb", "idiots",
                   "lazy", "dirty", "filthy", "worthless", "useless", "evil", "criminals", "rapists", "terrorists",
                   "a disease", "a plague", "disgusting", "less than human", "born criminals", "genetically inferior"],
}


def load_lexicon(path: str | None) -> dict:
    if path is None:
        return BUILT_IN
    file = Path(path)
    if not file.is_file():
        raise LlmkitError(f"bias: lexicon {path} does not exist")
    import yaml

    try:
        lexicon = yaml.safe_load(file.read_text(encoding="utf-8"))  # JSON is YAML too
    except yaml.YAMLError as error:
        raise LlmkitError(f"bias: lexicon {path} is not valid YAML/JSON ({error})") from None
    if not isinstance(lexicon, dict) or not isinstance(lexicon.get("categories"), dict):
        raise LlmkitError(f"bias: lexicon {path} needs `categories: {{NAME: {{groups: [...], terms: [...]}}}}`")
    return lexicon


def _alternatives(words) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


@dataclass
class BiasOptions:
    lexicon: str | None = None  # YAML/JSON file replacing the built-in lexicon
    action: str = "flag"  # flag: keep and count; drop: remove matching documents
    min_matches: int = 1  # matches needed to count (or drop) a document


class BiasFilter(Step):
    """Count (or drop) documents demeaning a group, per category (gender, religion, ...)."""

    name = "bias"
    Options = BiasOptions

    def setup(self) -> None:
        if self.options.action not in ("flag", "drop"):
            raise LlmkitError(f"bias: action must be flag or drop, not {self.options.action!r}")
        lexicon = load_lexicon(self.options.lexicon)
        predicates = _alternatives(lexicon.get("predicates", []))
        self.patterns = {}
        for category, spec in lexicon["categories"].items():
            parts = []
            if spec.get("groups") and predicates:
                parts.append(rf"\b(?:all\s+)?(?:{_alternatives(spec['groups'])})\s+(?:are|were|is)\s+(?:all\s+|just\s+|nothing\s+but\s+)?"
                             rf"(?:{predicates})\b")
            if spec.get("terms"):
                parts.append(rf"\b(?:{_alternatives(spec['terms'])})\b")
            if parts:
                self.patterns[category] = re.compile("|".join(parts), re.IGNORECASE)

    def __call__(self, text: str) -> Result:
        if not hasattr(self, "patterns"):
            self.setup()
        found = {c: len(p.findall(text)) for c, p in self.patterns.items()}
        found = {c: n for c, n in found.items() if n}
        if sum(found.values()) < self.options.min_matches:
            return keep(text)
        for category, count in found.items():
            self.counters[f"bias_docs_{category}"] += 1
            self.counters[f"bias_matches_{category}"] += count
        if self.options.action == "drop":
            return drop(f"bias_{max(found, key=found.get)}")
        return keep(text)
