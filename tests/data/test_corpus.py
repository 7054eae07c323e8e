import pytest
import torch

from llmkit.data.corpus import default_corpus, read_text_documents
from llmkit.data.windows import random_windows
from llmkit.errors import LlmkitError


def test_default_corpus_is_real_english_and_deterministic():
    docs = default_corpus(max_chars=300_000)
    text = " ".join(docs)
    assert len(text) >= 300_000
    words = text.lower().split()
    assert words.count("the") > 0.02 * len(words)  # English prose, not code
    assert default_corpus(max_chars=300_000) == docs


def test_text_files_split_on_blank_lines(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\nline two\n\nsecond doc\n")
    assert read_text_documents([tmp_path / "a.txt"]) == ["first doc\nline two", "second doc"]
    with pytest.raises(LlmkitError, match="does not exist"):
        read_text_documents([tmp_path / "missing.txt"])


def test_windows_are_shifted_by_one():
    stream = torch.arange(1000)
    inputs, targets = next(random_windows(stream, 16, 4, seed=0))
    assert inputs.shape == (4, 16) and torch.equal(targets, inputs + 1)
