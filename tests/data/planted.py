"""Planted test documents: real English prose, and generated near-duplicates with known Jaccard."""

from __future__ import annotations

import random

ENGLISH = [
    "The river rose through the night, and by morning the town had moved its market to the hill. "
    "Traders carried their goods up the old stone path, and children ran ahead to claim the best places. "
    "Nobody complained about the climb, because the view over the flooded valley was worth the effort. "
    "In the afternoon the water began to fall again, and the first boats returned to the harbour. "
    "By evening the market was back where it had always been, and the stories of the flood had begun.",
    "A good library is more than a room full of books. It is a place where questions are welcome and "
    "where the answers lead to better questions. The librarian knows that a reader who arrives with one "
    "topic in mind will often leave with three. That is why the shelves are arranged with care, and why "
    "the reading tables stand near the windows, where the light is kind to the eyes of those who stay long.",
    "When the engineers tested the bridge, they drove a line of heavy trucks across it and measured how "
    "far the deck moved. The numbers were within the limits that the designers had calculated, so the "
    "bridge was opened to traffic a week later. The city held a small ceremony, and the mayor thanked "
    "the workers who had spent two winters building it in the cold wind that blows along the estuary.",
]


def _pseudo_words(count: int = 3000) -> list[str]:
    rng = random.Random(12345)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(count)})


VOCAB = _pseudo_words()
FUNCTION = ["the", "of", "and", "to", "in", "is", "that", "with", "for", "as", "it", "was"]


def prose(seed: int, words: int = 120) -> str:
    """English-shaped random text: a large content vocabulary mixed with function words."""
    rng = random.Random(seed)
    out = []
    while len(out) < words:
        sentence = [rng.choice(VOCAB if rng.random() < 0.6 else FUNCTION) for _ in range(rng.randint(8, 16))]
        out += [sentence[0].capitalize(), *sentence[1:-1], sentence[-1] + "."]
    return " ".join(out)


def near_duplicate(text: str, seed: int, edits: int = 2) -> str:
    """The text with `edits` words replaced (shingle Jaccard stays well above 0.8 for long texts)."""
    rng = random.Random(seed)
    tokens = text.split()
    for i in rng.sample(range(len(tokens)), edits):
        tokens[i] = f"changed{rng.randint(0, 10**6)}"
    return " ".join(tokens)


def shingles(text: str, n: int = 5) -> set[str]:
    import re

    tokens = re.findall(r"\w+", text.lower())
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)
