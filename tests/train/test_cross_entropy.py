import pytest
import torch
from torch.nn import functional as F

from llmkit.train.cross_entropy import summed_cross_entropy
from llmkit.train.task import IGNORE_INDEX


def _reference(logits, targets):
    """float64 sum of -log softmax at the target over the kept rows."""
    logp = torch.log_softmax(logits.double(), -1)
    keep = targets != IGNORE_INDEX
    return -logp[keep].gather(1, targets[keep][:, None]).sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loss_and_gradient_match_float64_reference(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(2, 7, 11) * 3).to(dtype)
    targets = torch.randint(0, 11, (2, 7))
    targets[0, :3] = IGNORE_INDEX
    ours_in = logits.clone().requires_grad_()
    ref_in = logits.double().requires_grad_()
    loss = summed_cross_entropy(ours_in, targets)
    (loss * 0.5).backward()
    ref = _reference(ref_in.flatten(0, 1), targets.flatten())
    (ref * 0.5).backward()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=tol)
    assert ours_in.grad.dtype == dtype
    assert torch.allclose(ours_in.grad.double(), ref_in.grad, atol=tol)
    assert torch.all(ours_in.grad[0, :3] == 0)  # ignored positions get no gradient


def test_matches_torch_cross_entropy_sum():
    logits, targets = torch.randn(64, 50), torch.randint(0, 50, (64,))
    expected = F.cross_entropy(logits, targets, reduction="sum")
    assert torch.allclose(summed_cross_entropy(logits, targets), expected, rtol=1e-5)


def test_all_ignored_gives_zero_loss_and_gradient():
    logits = torch.randn(3, 5, requires_grad=True)
    loss = summed_cross_entropy(logits, torch.full((3,), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)
