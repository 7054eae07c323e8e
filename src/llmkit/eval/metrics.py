"""Scores for generated text against references, as the standard benchmarks define them:

- exact match and token F1 after SQuAD normalisation (Rajpurkar et al., arXiv 1606.05250: lower
  case, drop punctuation and the articles a/an/the, collapse whitespace); the best over references;
- ROUGE-L F-measure from the longest common subsequence of tokens (Lin, 2004);
- BLEU and chrF over the whole corpus, by `sacrebleu` (Post, arXiv 1804.08771), so numbers match
  what papers report;
- answer extraction by regular expression (the first group, else the whole match).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def squad_normalise(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: list[str]) -> float:
    return float(any(squad_normalise(prediction) == squad_normalise(r) for r in references))


def _f1(prediction: str, reference: str) -> float:
    pred, ref = squad_normalise(prediction).split(), squad_normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: list[str]) -> float:
    return max(_f1(prediction, r) for r in references)


def _lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for token in a:
        diagonal = 0
        for j, other in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if token == other else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, references: list[str]) -> float:
    """ROUGE-L F1 on lower-cased alphanumeric tokens, the best over references."""
    tokenize = lambda text: re.findall(r"[a-z0-9]+", text.lower())
    pred, best = tokenize(prediction), 0.0
    for reference in references:
        ref = tokenize(reference)
        lcs = _lcs_length(pred, ref)
        if lcs:
            precision, recall = lcs / len(pred), lcs / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def corpus_bleu(predictions: list[str], references: list[list[str]]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(predictions, _by_position(references)).score


def corpus_chrf(predictions: list[str], references: list[list[str]]) -> float:
    import sacrebleu

    return sacrebleu.corpus_chrf(predictions, _by_position(references)).score


def _by_position(references: list[list[str]]) -> list[list[str]]:
    """sacrebleu wants one list per reference position; pad ragged reference sets with the first."""
    width = max(len(r) for r in references)
    return [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]


def extract_answer(text: str, pattern: str | None) -> str:
    """The regex's first group (or whole match) in text; the stripped text when there is no pattern
    or no match."""
    if pattern:
        match = re.search(pattern, text)
        if match:
            return (match.group(1) if match.groups() else match.group(0)).strip()
    return text.strip()


PER_EXAMPLE = {"exact_match": exact_match, "f1": token_f1, "rouge_l": rouge_l}
CORPUS = {"bleu": corpus_bleu, "chrf": corpus_chrf}
GENERATIVE_METRICS = tuple(PER_EXAMPLE) + tuple(CORPUS)
