"""The main job, `llmkit demo`: the model lifecycle on a CPU, writing everything under one
directory. Stages so far: corpus -> tokenizer -> pre-training -> checkpoint -> samples.

    runs/demo/
      corpus.txt          the documents used (built-in corpus or --input files)
      tokenizer/          tokenizer.json, tokenizer_config.json
      metrics.jsonl       one line per training step
      model/              HF-layout checkpoint (+ tokenizer), ready for `llmkit generate`
      samples.md          greedy and sampled completions
      summary.json        what ran, how long, the losses
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from llmkit.checkpoint import save_checkpoint
from llmkit.data.corpus import default_corpus, read_text_documents
from llmkit.data.windows import random_windows, sequential_windows
from llmkit.fileio import atomic_dir, atomic_write_text, write_json
from llmkit.infer.llm import LLM
from llmkit.model import build_model, count_parameters, named_config
from llmkit.tokenizer import Tokenizer, train_bpe
from llmkit.train import CausalLMTask, TrainConfig, evaluate_loss, train

PROMPTS = ["The list", "Return the", "This module provides", "If the file"]


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    input: list[str] | None = None
    model: str = "mini-llama"
    vocab_size: int = 4096
    seq_len: int = 256
    batch_size: int = 16
    minutes: float = 3.0
    max_steps: int = 2000
    lr: float = 2e-3
    seed: int = 0
    max_new_tokens: int = 48
    progress: bool = True


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(cfg: DemoConfig) -> dict:
    out, started = Path(cfg.out), time.perf_counter()
    named_config(cfg.model)  # fail on a bad name before minutes of work, not after
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    docs = read_text_documents(cfg.input) if cfg.input else default_corpus()
    atomic_write_text(out / "corpus.txt", "\n\n".join(docs) + "\n")
    log(f"corpus: {len(docs):,} documents, {sum(map(len, docs)):,} characters -> {out / 'corpus.txt'}")

    tokenizer = _train_tokenizer(docs, cfg, out / "tokenizer")
    train_tokens, val_tokens = _tokenize(docs, tokenizer)
    log(f"tokens: {train_tokens.numel():,} train, {val_tokens.numel():,} validation")

    model, result, val_loss = _pretrain(cfg, tokenizer, train_tokens, val_tokens, out)
    save_checkpoint(model, out / "model", tokenizer=tokenizer,
                    generation_config={"eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id})
    log(f"checkpoint -> {out / 'model'}")

    samples = _sample(LLM(model, tokenizer), cfg)
    atomic_write_text(out / "samples.md", samples)
    print(samples)
    summary = {
        "config": asdict(cfg), "documents": len(docs), "train_tokens": train_tokens.numel(),
        "parameters": sum(p.numel() for p in model.parameters()), "steps": result.steps,
        "first_loss": result.losses[0], "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]),
        "val_loss": val_loss, "val_perplexity": float(torch.tensor(val_loss).exp()),
        "tokens_per_s": result.tokens_per_s, "train_seconds": result.seconds,
        "total_seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    _report(out, summary)
    return summary


def _train_tokenizer(docs: list[str], cfg: DemoConfig, out: Path) -> Tokenizer:
    log(f"training a byte-level BPE tokenizer, vocab {cfg.vocab_size}")
    tokenizer = train_bpe(iter(docs), cfg.vocab_size, show_progress=cfg.progress)
    with atomic_dir(out) as tmp:
        tokenizer.save(tmp)  # the demo trains from in-memory documents, so train_tokenizer (files) does not fit
    return tokenizer


def _tokenize(docs: list[str], tokenizer: Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """One stream with eos after every document; the last 5% of documents are held out."""
    ids = tokenizer.encode_batch(docs, add_special_tokens=False)
    split = max(1, len(ids) * 95 // 100)
    join = lambda chunks: torch.tensor([t for doc in chunks for t in (*doc, tokenizer.eos_id)], dtype=torch.long)
    return join(ids[:split]), join(ids[split:])


def _pretrain(cfg: DemoConfig, tokenizer: Tokenizer, train_tokens, val_tokens, out: Path):
    model_cfg = named_config(cfg.model).replace(
        vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
        pad_token_id=tokenizer.pad_id, max_seq_len=max(cfg.seq_len, named_config(cfg.model).max_seq_len))
    log(f"model {cfg.model}: {count_parameters(model_cfg):,} parameters; "
        f"pre-training for up to {cfg.minutes} min / {cfg.max_steps} steps")
    model = build_model(model_cfg, device="cpu")
    train_cfg = TrainConfig(max_steps=cfg.max_steps, max_minutes=cfg.minutes, lr=cfg.lr,
                            warmup_steps=min(50, cfg.max_steps // 10 + 1), seed=cfg.seed)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    batches = random_windows(train_tokens, cfg.seq_len, cfg.batch_size, cfg.seed)
    result = train(model, batches, CausalLMTask(), train_cfg, out / "metrics.jsonl", cfg.progress)
    val_loss = evaluate_loss(model, sequential_windows(val_tokens, cfg.seq_len, cfg.batch_size), CausalLMTask())
    log(f"trained {result.steps} steps in {result.seconds:.0f}s ({result.tokens_per_s:,.0f} tokens/s): "
        f"loss {result.losses[0]:.2f} -> {result.losses[-1]:.2f}, validation loss {val_loss:.2f}")
    return model, result, val_loss


def _sample(llm: LLM, cfg: DemoConfig) -> str:
    greedy = llm.generate(PROMPTS, max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    sampled = llm.generate(PROMPTS, max_new_tokens=cfg.max_new_tokens, temperature=0.8, top_k=50, seed=cfg.seed)
    show = lambda text: text.replace("\n", " ↵ ")  # keep each sample on one line
    lines = ["# Samples", ""]
    for prompt, g, s in zip(PROMPTS, greedy, sampled):
        lines += [f"**{prompt}**", f"- greedy: {prompt}{show(g)}",
                  f"- sampled (T=0.8, top-k 50): {prompt}{show(s)}", ""]
    return "\n".join(lines)


def _report(out: Path, summary: dict) -> None:
    log(f"done in {summary['total_seconds']:.0f}s. Outputs in {out.resolve()}:")
    for name in ("corpus.txt", "tokenizer/", "metrics.jsonl", "model/", "samples.md", "summary.json"):
        print(f"  {out / name}")
    print(f"try: llmkit generate --checkpoint {out / 'model'} --prompt \"Return the\" --max-new-tokens 40")
