import platform
import subprocess
import sys

import pytest

# A small training step whose logits and their gradient (32 MiB each) are above glibc's mmap
# threshold; prints the minor page faults of the last steps.
PROBE = """
import resource, sys, torch
from llmkit.host.allocator import keep_freed_memory
from llmkit.model import build_model, named_config
from llmkit.train.objectives import token_loss
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
torch.manual_seed(0)
model = build_model(named_config("tiny-llama").replace(vocab_size=8192, d_model=128, n_layer=2), "cpu")
tokens = torch.randint(0, 8192, (4, 257))

def step():
    loss, _ = token_loss(model(tokens[:, :-1]), tokens[:, 1:])
    loss.backward()

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    """The least of three fresh processes: depending on heap layout a tuned run sometimes faults one
    or two 32 MiB buffers in again (0 to 16k faults observed between identical runs)."""
    runs = [subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
            for _ in range(3)]
    return min(int(out.stdout.split()[-1]) for out in runs)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_training_steps_stop_page_faulting_their_buffers():
    default, tuned = _faults("default"), _faults("tuned")
    assert default >= 3 * 8192  # the 32 MiB logits alone fault 8k pages in per step by default
    assert tuned < default / 5
