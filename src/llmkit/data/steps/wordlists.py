"""Built-in word lists (replaceable by a user file, one entry per line). The bad-word list follows
the spirit of C4's "List of Dirty, Naughty, Obscene, and Otherwise Bad Words", abridged (without "xxx", which technical text uses as a placeholder)."""

from __future__ import annotations

from pathlib import Path

from llmkit.errors import LlmkitError

BAD_WORDS = frozenset("""
fuck fucking fucked fucker motherfucker shit shitty bullshit cunt cock dick pussy asshole bastard
bitch whore slut porn porno pornography blowjob handjob masturbate masturbation orgasm dildo
nude nudes horny erotic hentai boobs tits anal rape rapist
""".split())

TOXIC_WORDS = BAD_WORDS | frozenset("""
idiot idiots moron morons stupid dumb retard retarded loser losers scum trash worthless pathetic
disgusting hate hateful kill die ugly freak
""".split())


def load_word_list(path: str | None, default: frozenset[str]) -> frozenset[str]:
    if path is None:
        return default
    file = Path(path)
    if not file.is_file():
        raise LlmkitError(f"word list {file} does not exist")
    return frozenset(w.strip().lower() for w in file.read_text(encoding="utf-8").splitlines() if w.strip())
