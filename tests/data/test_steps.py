"""Each step on planted examples: what it must drop, and what it must keep."""

import pytest

from llmkit.data.steps.decontaminate import Decontaminate, DecontaminateOptions
from llmkit.data.steps.language import LanguageFilter, identify
from llmkit.data.steps.normalize import Normalize, NormalizeOptions
from llmkit.data.steps.pii import PiiScrubber, iban_ok, luhn_ok
from llmkit.data.steps.quality import C4Filter, GopherFilter
from llmkit.data.steps.toxicity import ToxicityFilter, ToxicityOptions
from tests.data.planted import ENGLISH


def test_normalize_fixes_unicode_controls_and_whitespace():
    text, reason = Normalize()("Cafe\u0301\x00\x07 bar\u200b  \t baz  \r\n\n\n\nnext\u00a0line ")
    assert reason is None and text == "Café bar baz\n\nnext line"


def test_normalize_boilerplate_is_optional_and_empty_documents_drop():
    text = "Real content here.\nThis site uses cookies to improve your experience.\nMore content."
    assert "cookies" in Normalize()(text)[0]
    cleaned = Normalize(NormalizeOptions(remove_boilerplate=True))(text)[0]
    assert cleaned == "Real content here.\nMore content."
    assert Normalize()(" \x00\n\t ") == (None, "too_short")


@pytest.mark.parametrize("text,language", [
    (ENGLISH[0], "en"),
    ("Der Fluss stieg in der Nacht, und am Morgen war der Markt auf dem Hügel, weil das Wasser nicht sank.", "de"),
    ("La rivière est montée pendant la nuit et le marché a été déplacé sur la colline par les habitants.", "fr"),
    ("河水在夜里上涨，到了早上，镇上的市场已经搬到了山上。", "zh"),
    ("Река поднялась ночью, и к утру рынок переехал на холм.", "ru"),
])
def test_language_identifier(text, language):
    assert identify(text)[0] == language


def test_language_filter_keeps_english_drops_the_rest():
    step = LanguageFilter()
    assert step(ENGLISH[1])[1] is None
    assert step("Der Fluss stieg in der Nacht, und am Morgen war der Markt auf dem Hügel.")[1] == "language_de"
    assert step("xq7 zzv 0x1f kkp qwrt vvb")[1] == "language_low_score"


def test_gopher_keeps_prose_and_drops_each_planted_failure():
    step = GopherFilter()
    assert step(ENGLISH[0]) == (ENGLISH[0], None)
    planted = {
        "gopher_word_count": "Too short to be a document of the web.",
        "gopher_symbol_ratio": " ".join(["#tagging the rivers and markets"] * 15),
        "gopher_bullet_lines": "\n".join(f"- bulleted entry {w} about rivers and the markets"
                                         for w in "one two three four five six seven eight nine ten".split()),
        "gopher_stop_words": " ".join(f"word{i} alpha beta gamma delta" for i in range(15)),
        "gopher_dup_lines": "\n".join([ENGLISH[1][:120]] * 6 + [ENGLISH[2]]),
        "gopher_alpha_words": " ".join(["the 12345 45678 78901 00012 and rivers"] * 10),
    }
    for reason, text in planted.items():
        assert step(text) == (None, reason), reason


def test_gopher_repetition_ngram_rules():
    step = GopherFilter()
    repeated = (ENGLISH[0] + " ") * 2  # every 5-gram occurs twice
    assert step(repeated)[1].startswith("gopher_")
    assert step.repetition_reason(ENGLISH[2]) is None


def test_c4_line_and_document_rules():
    step = C4Filter()
    doc = "\n".join([
        "The first sentence is complete. The second one too.", "menu home about contact",
        "Please enable javascript to view this page.", "We use cookies, see our privacy policy.",
        "Another full sentence stands here. And one more!", "A final line ends properly. Really it does?",
    ])
    kept, reason = step(doc)
    assert reason is None
    assert kept.split("\n") == ["The first sentence is complete. The second one too.",
                                "Another full sentence stands here. And one more!",
                                "A final line ends properly. Really it does?"]
    assert step("Lorem ipsum dolor sit amet. " * 5)[1] == "c4_lorem_ipsum"
    assert step("function f() { return 1; } is code. " * 5)[1] == "c4_curly_brace"
    assert step("This page has porn in it. " * 5)[1] == "c4_bad_words"
    assert step("Only one sentence here.")[1] == "c4_too_few_sentences"


def test_toxicity_threshold_and_custom_list(tmp_path):
    step = ToxicityFilter()
    assert step(ENGLISH[0])[1] is None
    assert step("You stupid idiot, you worthless moron, I hate you. " * 3)[1] == "toxic"
    (tmp_path / "words.txt").write_text("river\nmarket\n")
    custom = ToxicityFilter(ToxicityOptions(word_list_file=str(tmp_path / "words.txt"), max_fraction=0.01))
    assert custom(ENGLISH[0])[1] == "toxic"


def test_pii_replaces_each_kind_with_typed_placeholders():
    step = PiiScrubber()
    text = ("Write to jane.roe@example.org or call +1 415-555-0132 / (020) 7946 0958 / 415.555.0199. "
            "Hosts 10.0.0.7 and 2001:db8::8a2e:370:7334. Card 4111 1111 1111 1111 and IBAN "
            "GB82 WEST 1234 5698 7654 32. Keys AKIAIOSFODNN7EXAMPLE, ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789.")
    out, reason = step(text)
    assert reason is None
    for secret in ("jane.roe", "415-555", "7946", "10.0.0.7", "2001:db8", "4111", "GB82", "AKIA", "ghp_"):
        assert secret not in out, secret
    assert dict(step.counters) == {"EMAIL": 1, "PHONE": 3, "IP_ADDRESS": 2, "CREDIT_CARD": 1, "IBAN": 1, "SECRET": 2}


def test_pii_leaves_lookalikes_alone():
    step = PiiScrubber()
    text = "Python 3.11.7 was released on 2024-01-05; see pages 10-20, at 12:30:45, card 4111 1111 1111 1112."
    assert step(text)[0] == text
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB00WEST12345698765432")


def test_decontamination_drops_13_gram_overlap_only(tmp_path):
    question = "which river rose through the night so that the town moved its market to the hill"
    (tmp_path / "eval.jsonl").write_text('{"question": "%s", "answer": "the hill"}\n' % question)
    step = Decontaminate(DecontaminateOptions(eval_files=[str(tmp_path / "eval.jsonl")]))
    assert step(ENGLISH[0])[1] is None  # shares fewer than 13 consecutive words
    leaked = "Intro text. " + " ".join(question.split()[:13]) + " and more."
    assert step(leaked) == (None, "contaminated")
    assert step(" ".join(question.split()[:12]))[1] is None
