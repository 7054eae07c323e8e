"""Beam search against transformers' generate(num_beams=...) on the same weights."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.beam_search import beam_search
from tests.parity.hf_models import hf_tiny


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = hf_tiny("llama")
    path = tmp_path_factory.mktemp("beam")
    hf.save_pretrained(path)
    return hf, load_checkpoint(path).eval()


def hf_beams(hf, prompt, eos, **kw):
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      do_sample=False, pad_token_id=95, eos_token_id=eos, **kw)[0, len(prompt):].tolist()
    return [t for t in out if t not in (eos, 95)] if eos is not None else out


@pytest.mark.parametrize("early_stopping", [True, False, "never"])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
def test_matches_transformers(pair, early_stopping, length_penalty):
    hf, ours = pair
    prompts = [[5, 9, 13, 2], [40, 41, 42]]
    disagreements = 0
    for prompt in prompts:
        with torch.no_grad():
            greedy_path = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=95)
        for eos in (None, greedy_path[0, len(prompt) + 3].item()):  # an eos the search will meet
            expected = hf_beams(hf, prompt, eos, num_beams=3, max_new_tokens=12, length_penalty=length_penalty,
                                early_stopping=early_stopping)
            got = beam_search(ours, prompt, num_beams=3, max_new_tokens=12, length_penalty=length_penalty,
                              early_stopping=early_stopping, stop_ids=set() if eos is None else {eos})
            disagreements += got[0].token_ids != expected
    assert disagreements == 0


def test_beam_of_one_is_greedy(pair):
    hf, ours = pair
    prompt = [7, 8, 9]
    greedy = hf.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False, pad_token_id=95)[0, 3:].tolist()
    assert beam_search(ours, prompt, num_beams=1, max_new_tokens=10)[0].token_ids == greedy


def test_scores_are_the_sequences_log_probabilities(pair):
    _, ours = pair
    prompt = [3, 4, 5]
    hyps = beam_search(ours, prompt, num_beams=4, max_new_tokens=6, length_penalty=0.0)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        full = torch.tensor([prompt + h.token_ids])
        with torch.no_grad():
            logp = ours(full)[0, len(prompt) - 1:-1].log_softmax(-1)  # (6, V)
        direct = logp.gather(1, torch.tensor(h.token_ids)[:, None]).sum().item()
        assert h.score == pytest.approx(direct, abs=1e-4)
