import os

import pytest
import torch

# Two cores: one intra-op thread per pytest-xdist worker avoids oversubscription.
torch.set_num_threads(int(os.environ.get("LLMKIT_TEST_THREADS", "1")))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0
