"""Generative metrics against their definitions and against the reference packages."""

import pytest

from llmkit.eval.metrics import (
    corpus_bleu,
    corpus_chrf,
    exact_match,
    extract_answer,
    rouge_l,
    squad_normalise,
    token_f1,
)
from llmkit.eval.prompting import COT_ANSWER_REGEX


def test_squad_normalisation_drops_case_punctuation_and_articles():
    assert squad_normalise("The  Eiffel Tower, in Paris!") == "eiffel tower in paris"
    assert exact_match("an apple.", ["Apple", "pear"]) == 1.0 and exact_match("apples", ["apple"]) == 0.0


def test_token_f1_is_the_harmonic_mean_of_token_precision_and_recall():
    # prediction 4 tokens, reference 2, overlap 2: precision 1/2, recall 1 -> F1 2/3
    assert token_f1("the cat sat on mat", ["cat sat"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("dog", ["cat", "dog"]) == 1.0 and token_f1("", ["cat"]) == 0.0


def test_rouge_l_matches_the_rouge_score_package():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = [("the cat was found under the bed", "the cat was under the bed"),
             ("police killed the gunman", "the gunman police killed"), ("a b c", "x y z")]
    for prediction, reference in pairs:
        assert rouge_l(prediction, [reference]) == pytest.approx(scorer.score(reference, prediction)["rougeL"].fmeasure)


def test_bleu_and_chrf_come_from_sacrebleu():
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(100.0)
    assert corpus_chrf(["abc"], [["xyz"]]) == pytest.approx(0.0)
    partial = corpus_bleu(["the cat sat on a mat today"], [["the cat sat on the mat", "a cat sat on the mat"]])
    assert 0 < partial < 100


def test_answer_extraction_by_regex_and_chain_of_thought_pattern():
    assert extract_answer("Result: 42 apples", r"(\d+)") == "42"
    assert extract_answer("no digits", r"(\d+)") == "no digits"
    cot = "20 + 30 = 50 and 3 + 8 = 11, so 50 + 11 = 61. The answer is 61."
    assert extract_answer(cot, COT_ANSWER_REGEX) == "61"
    assert extract_answer("so the answer is lamp river bird\nQ: next", COT_ANSWER_REGEX) == "lamp river bird"
