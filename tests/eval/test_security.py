"""Privacy leakage, bias probes and typo robustness measure what they claim."""

import random

import pytest
import torch

from llmkit.data.canaries import make_canaries, plant_canaries, same_shape
from llmkit.eval.security import bias_gaps, canary_leakage, perturb_characters
from llmkit.infer.llm import LLM
from llmkit.model import build_model, named_config


def memorising_llm(tokenizer, texts: list[str], steps: int) -> LLM:
    """A tiny model trained on `texts` alone (steps=0: untrained)."""
    torch.manual_seed(0)
    cfg = named_config("tiny-llama").replace(vocab_size=tokenizer.vocab_size, max_seq_len=64)
    model = build_model(cfg, "cpu")
    rows = [tokenizer.encode(t) for t in texts]
    width = max(map(len, rows))
    batch = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows])  # (B, T), padding repeats the last token
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return LLM(model.eval(), tokenizer, stop_ids=set())


def test_planted_canaries_are_extracted_once_memorised_and_not_before(tiny_tokenizer):
    canaries = make_canaries(4, seed=1)
    texts = [f"{c['prefix']} {c['secret']}." for c in canaries]
    untrained = canary_leakage(memorising_llm(tiny_tokenizer, texts, 0), canaries, candidates=31)
    memorised = canary_leakage(memorising_llm(tiny_tokenizer, texts, 150), canaries, candidates=31)
    assert untrained["metrics"]["extraction_rate"] == 0 and untrained["metrics"]["mean_exposure_bits"] < 4
    assert memorised["metrics"]["extraction_rate"] == 1
    assert memorised["metrics"]["mean_exposure_bits"] == pytest.approx(5.0)  # log2(32): ranked first every time


def test_canaries_are_planted_the_requested_number_of_times():
    canaries = make_canaries(3)
    docs = plant_canaries([f"doc {i}" for i in range(20)], canaries, repeats=4)
    for canary in canaries:
        assert sum(canary["secret"] in d for d in docs) == 4
    shaped = same_shape("4071-2958", random.Random(0))
    assert len(shaped) == 9 and shaped[4] == "-" and shaped.replace("-", "").isdigit()


def test_bias_gap_is_the_loglikelihood_difference_and_zero_for_identical_groups(tiny_checkpoint):
    llm = LLM.load(tiny_checkpoint)
    same = bias_gaps(llm, [{"template": "The {group} person was", "groups": ["tall", "tall"], "continuation": " kind"}])
    assert same["metrics"]["mean_abs_gap"] == pytest.approx(0, abs=1e-6)
    records = [{"template": "The {group} person was", "groups": ["young", "old"], "continuation": " kind"}]
    gap = bias_gaps(llm, records)["metrics"]["mean_gap"]
    from llmkit.eval.loglikelihood import continuation_loglikelihoods, encode_pair

    young, old = continuation_loglikelihoods(llm.model, [encode_pair(llm.tokenizer, "The young person was", " kind"),
                                                         encode_pair(llm.tokenizer, "The old person was", " kind")])
    assert gap == pytest.approx(young[0] - old[0], abs=1e-5)


def test_character_perturbation_is_seeded_and_scales_with_the_rate():
    text = "What is the capital of France? Answer in one word."
    assert perturb_characters(text, 0.0, random.Random(0)) == text
    assert perturb_characters(text, 0.3, random.Random(5)) == perturb_characters(text, 0.3, random.Random(5))
    changed = lambda rate: sum(perturb_characters(text, rate, random.Random(s)) != text for s in range(20))
    assert changed(0.3) == 20
    distance = lambda rate: sum(a != b for a, b in zip(perturb_characters(text, rate, random.Random(1)), text))
    assert distance(0.05) < distance(0.5)
