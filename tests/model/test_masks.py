import torch

from llmkit.model.masks import attention_allowed


def _pos(t, start=0):
    return torch.arange(start, start + t)[None]


def test_causal_mask_is_lower_triangular():
    allowed = attention_allowed(_pos(5), _pos(5))[0, 0]
    assert torch.equal(allowed, torch.ones(5, 5).tril().bool())


def test_prefix_mask_is_bidirectional_inside_the_prefix_only():
    p, t = 3, 6
    allowed = attention_allowed(_pos(t), _pos(t), prefix_len=torch.tensor([p]))[0, 0]
    expected = torch.tensor([[j < p or j <= i for j in range(t)] for i in range(t)])
    assert torch.equal(allowed, expected)


def test_bidirectional_mask_sees_everything():
    assert attention_allowed(_pos(4), _pos(4), causal=False).all()


def test_sliding_window_keeps_query_plus_window_minus_one():
    w, t = 3, 7
    allowed = attention_allowed(_pos(t), _pos(t), window=w)[0, 0]
    expected = torch.tensor([[i - w < j <= i for j in range(t)] for i in range(t)])
    assert torch.equal(allowed, expected)


def test_left_padding_is_never_attended_by_real_tokens():
    pos = torch.tensor([[-2, -1, 0, 1, 2]])  # two padding slots
    allowed = attention_allowed(pos, pos)[0, 0]
    assert not allowed[2:, :2].any()
    assert allowed.any(dim=-1).all()  # no fully masked row (those would give NaN)


def test_decode_step_against_cache():
    allowed = attention_allowed(torch.tensor([[4]]), _pos(5))[0, 0]
    assert allowed.all()
