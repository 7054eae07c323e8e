import os

import pytest
import torch

# Two cores: one intra-op thread per pytest-xdist worker avoids oversubscription.
torch.set_num_threads(int(os.environ.get("LLMKIT_TEST_THREADS", "1")))
os.environ.setdefault("LLMKIT_THREADS", os.environ.get("LLMKIT_TEST_THREADS", "1"))  # the CLI's own default
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. A list is a mutable sequence of items. "
    "Return the number of items in the container. If the file does not exist, an error is raised. "
    "Unicode text like naïve café, 東京 and emoji 🙂 must survive a round trip.\n"
) * 40


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from llmkit.tokenizer import train_bpe

    return train_bpe([SAMPLE_TEXT], vocab_size=300, min_frequency=1, show_progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer):
    """A random tiny-llama with a trained tokenizer, saved in the HF layout."""
    from llmkit.checkpoint import save_checkpoint
    from llmkit.model import build_model, named_config

    cfg = named_config("tiny-llama").replace(vocab_size=tiny_tokenizer.vocab_size, eos_token_id=tiny_tokenizer.eos_id,
                                             bos_token_id=tiny_tokenizer.bos_id, pad_token_id=tiny_tokenizer.pad_id)
    torch.manual_seed(0)
    model = build_model(cfg, "cpu")
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, path, tokenizer=tiny_tokenizer)
    return path


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory):
    """Token shards + tokenizer from `llmkit data prepare` on 150 generated documents."""
    from llmkit.cli import main
    from tests.data.corpus_files import write_jsonl
    from tests.data.planted import prose

    root = tmp_path_factory.mktemp("prepared")
    corpus = write_jsonl(root / "in.jsonl", [{"text": prose(i, words=120)} for i in range(150)])
    assert main(["data", "prepare", "--input", str(corpus), "--out", str(root / "data"), "--steps",
                 "normalize,tokenize", "--vocab-size", "400", "--no-progress"]) == 0
    return root / "data"


@pytest.fixture(scope="session")
def trained_small(prepared_data, tmp_path_factory):
    """tiny-llama (d_model 128, 4 layers) pre-trained for 300 steps on the prepared shards: a model
    whose weights have structure, so compression quality can be compared on validation perplexity."""
    from llmkit.train.config import (
        DataConfig,
        OptimConfig,
        PretrainConfig,
        ScheduleConfig,
    )
    from llmkit.train.pretrain import run_pretrain

    out = tmp_path_factory.mktemp("compress") / "run"
    run_pretrain(PretrainConfig(data=str(prepared_data), out=str(out), model="tiny-llama", max_steps=300,
                                eval_every=0, progress=False, optim=OptimConfig(lr=3e-3),
                                schedule=ScheduleConfig(warmup_steps=20), batch=DataConfig(seq_len=64, batch_size=8)))
    return out / "final"
