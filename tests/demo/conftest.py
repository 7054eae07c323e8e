import pytest

from tests.data.planted import ENGLISH, prose


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`llmkit demo` shrunk to seconds on user input (44 documents, one an exact duplicate)."""
    from llmkit.demo.lifecycle import DemoConfig, run_demo

    root = tmp_path_factory.mktemp("demo")
    docs = ENGLISH + [ENGLISH[0]] + [prose(seed, words=60) for seed in range(40)]  # the last two are held out
    (root / "in.txt").write_text("\n\n".join(docs))
    out = root / "run"
    summary = run_demo(DemoConfig(out=str(out), input=[str(root / "in.txt")], model="tiny-llama",
                                  vocab_size=320, seq_len=32, batch_size=8, max_steps=40, minutes=2,
                                  lr=3e-3, max_new_tokens=8, sft_steps=4, dpo_steps=3, progress=False))
    return out, summary
