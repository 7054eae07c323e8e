import torch

from llmkit.decode.sampler import RowState, apply_penalties, sample
from llmkit.decode.sampling_params import SamplingParams


def row(**kw):
    return RowState(SamplingParams(**kw), torch.Generator().manual_seed(0), [1, 2], [3, 3])


def test_penalties_follow_their_definitions():
    logits = torch.tensor([1.0, 2.0, -2.0, 4.0, 0.5])
    out = apply_penalties(logits.clone(), row(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25))
    # tokens 1, 2 (prompt) and 3 (output): positive logits halved, negative doubled;
    # token 3 also loses presence 0.5 + frequency 2 x 0.25
    assert torch.allclose(out, torch.tensor([1.0, 1.0, -4.0, 2.0 - 0.5 - 0.5, 0.5]))


def test_min_p_removes_tokens_below_the_fraction_of_the_best():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    state = row(temperature=1.0, min_p=0.2)
    draws = {sample(logits, [state])[0].token for _ in range(200)}
    assert draws == {0, 1}


def test_greedy_rows_and_sampled_rows_mix_in_one_batch():
    logits = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]])
    out = sample(logits, [row(), row(temperature=1e-3)])
    assert [s.token for s in out] == [1, 0]
