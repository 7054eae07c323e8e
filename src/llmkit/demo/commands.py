"""`llmkit demo`."""

from __future__ import annotations

from typing import Literal


def demo(out: str = "runs/demo", input: list[str] | None = None, model: str = "mini-llama",
         vocab_size: int = 4096, seq_len: int = 256, batch_size: int = 16, minutes: float = 3.0,
         max_steps: int = 2000, lr: float = 2e-3, sft_steps: int = 500, dpo_steps: int = 300, seed: int = 0,
         progress: bool = True, overwrite: bool = False,
         precision: Literal["auto", "fp32", "bf16"] = "auto") -> None:
    """Run the model lifecycle end to end on a CPU: corpus, curation and tokenizer, pre-training,
    samples, SFT (LoRA), DPO, compression, evaluation of every stage's model, one request to the
    OpenAI-compatible server, and the lifecycle report (OUT/report.html, OUT/report.md).

    With no --input it uses the built-in corpus: Python's own documentation (pydoc topics and
    standard-library docstrings), already on every machine. Outputs go under OUT.

    Args:
        out: output directory.
        input: your own .txt files (blank lines separate documents) instead of the built-in corpus.
        model: named config to pre-train (see `llmkit models`); its vocabulary follows the tokenizer.
        vocab_size: BPE vocabulary size.
        seq_len: training window length in tokens.
        batch_size: windows per step.
        minutes: wall-clock budget for pre-training.
        max_steps: step budget for pre-training (whichever budget ends first).
        lr: peak learning rate (warmup, then cosine decay).
        sft_steps: LoRA fine-tuning steps on the built-in copy task.
        dpo_steps: DPO steps on the built-in recall preference pairs.
        seed: seed for initialisation, batches and sampling.
        progress: show progress bars.
        overwrite: run in a non-empty OUT that holds no earlier demo (only llmkit's files are replaced).
        precision: pre-training precision; auto is bf16 autocast where the CPU has bf16 matrix units
            (AMX or AVX-512 BF16: several times fp32's matmul speed), fp32 elsewhere. The log says which.
    """
    from llmkit.demo.lifecycle import DemoConfig, run_demo

    run_demo(DemoConfig(out=out, input=input, model=model, vocab_size=vocab_size, seq_len=seq_len,
                        batch_size=batch_size, minutes=minutes, max_steps=max_steps, lr=lr, sft_steps=sft_steps,
                        dpo_steps=dpo_steps, seed=seed, precision=precision,
                        progress=progress, overwrite=overwrite))
