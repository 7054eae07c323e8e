"""The main job, `llmkit demo`: the model lifecycle on a CPU, writing everything under one
directory. Stages so far: corpus -> curation + tokenizer -> pre-training -> checkpoint -> samples.

    runs/demo/
      corpus.jsonl        the documents used (built-in corpus or --input files)
      data/               `llmkit data prepare` output: stats.json, rejected/, tokenizer/, token shards
      metrics.jsonl       one line per training step
      model/              HF-layout checkpoint (+ tokenizer), ready for `llmkit generate`
      samples.md          greedy and sampled completions
      summary.json        what ran, how long, the losses
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from llmkit.checkpoint import save_checkpoint
from llmkit.data.corpus import default_corpus, read_text_documents
from llmkit.data.loader import TokenDataset, TokenLoader
from llmkit.data.pipeline import PrepareConfig, prepare
from llmkit.fileio import atomic_write_text, write_json
from llmkit.infer.llm import LLM
from llmkit.model import build_model, count_parameters, named_config
from llmkit.tokenizer import Tokenizer
from llmkit.train import CausalLMTask, TrainConfig, evaluate_loss, train

PROMPTS = ["The list", "Return the", "This module provides", "If the file"]
# Curation for documentation prose: Gopher bounds relaxed for short docstrings, and no C4 rules
# (they target web pages: they would drop most docstrings for code lines and curly braces).
CURATION_STEPS = [
    {"name": "normalize"}, {"name": "language", "min_score": 0.1}, {"name": "gopher", "min_words": 20},
    {"name": "toxicity"}, {"name": "exact_dedup"}, {"name": "near_dedup"}, {"name": "pii"},
]


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
    atomic_write_text(out / "corpus.jsonl", "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    log(f"corpus: {len(docs):,} documents, {sum(map(len, docs)):,} characters -> {out / 'corpus.jsonl'}")

    stats = _curate(cfg, out)
    train_data = TokenDataset(out / "data", "train")
    tokenizer = Tokenizer.from_dir(out / "data" / "tokenizer")
    log(f"tokens: {len(train_data):,} train, {len(TokenDataset(out / 'data', 'val')):,} validation")

    model, result, val_loss = _pretrain(cfg, tokenizer, train_data, out)
    save_checkpoint(model, out / "model", tokenizer=tokenizer,
                    generation_config={"eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id})
    log(f"checkpoint -> {out / 'model'}")

    samples = _sample(LLM(model, tokenizer), cfg)
    atomic_write_text(out / "samples.md", samples)
    print(samples)
    summary = {
        "config": asdict(cfg), "documents": len(docs), "documents_kept": stats["docs_out"],
        "train_tokens": len(train_data),
        "parameters": sum(p.numel() for p in model.parameters()), "steps": result.steps,
        "first_loss": result.losses[0], "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]),
        "val_loss": val_loss, "val_perplexity": float(torch.tensor(val_loss).exp()),
        "tokens_per_s": result.tokens_per_s, "train_seconds": result.seconds,
        "total_seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    _report(out, summary)
    return summary


def _curate(cfg: DemoConfig, out: Path) -> dict:
    log("curating: normalize, language, gopher, toxicity, exact + near dedup, PII, then BPE + token shards")
    shutil.rmtree(out / "data", ignore_errors=True)  # the corpus may differ from the last run's
    steps = CURATION_STEPS + [{"name": "tokenize", "vocab_size": cfg.vocab_size, "val_fraction": 0.05}]
    return prepare(PrepareConfig(inputs=[str(out / "corpus.jsonl")], out=str(out / "data"), steps=steps,
                                 workers=2, unit_mb=0.5, progress=cfg.progress))


def _pretrain(cfg: DemoConfig, tokenizer: Tokenizer, train_data: TokenDataset, out: Path):
    model_cfg = named_config(cfg.model).replace(
        vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
        pad_token_id=tokenizer.pad_id, max_seq_len=max(cfg.seq_len, named_config(cfg.model).max_seq_len))
    log(f"model {cfg.model}: {count_parameters(model_cfg):,} parameters; "
        f"pre-training for up to {cfg.minutes} min / {cfg.max_steps} steps")
    model = build_model(model_cfg, device="cpu")
    train_cfg = TrainConfig(max_steps=cfg.max_steps, max_minutes=cfg.minutes, lr=cfg.lr,
                            warmup_steps=min(50, cfg.max_steps // 10 + 1), seed=cfg.seed)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    batches = TokenLoader(train_data, cfg.seq_len, cfg.batch_size, seed=cfg.seed)
    result = train(model, batches, CausalLMTask(), train_cfg, out / "metrics.jsonl", cfg.progress)
    val_loss = evaluate_loss(model, _validation_batches(out / "data", cfg), CausalLMTask())
    log(f"trained {result.steps} steps in {result.seconds:.0f}s ({result.tokens_per_s:,.0f} tokens/s): "
        f"loss {result.losses[0]:.2f} -> {result.losses[-1]:.2f}, validation loss {val_loss:.2f}")
    return model, result, val_loss


def _validation_batches(data_dir: Path, cfg: DemoConfig):
    """The validation split once through, in order (shorter windows when the split is small)."""
    val = TokenDataset(data_dir, "val")
    seq_len = min(cfg.seq_len, len(val) - 2)
    loader = TokenLoader(val, seq_len, cfg.batch_size, mode="sequential")
    return [next(loader) for _ in range(max(1, (len(val) - 1) // (seq_len * cfg.batch_size)))]


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
    for name in ("corpus.jsonl", "data/stats.json", "data/rejected/", "metrics.jsonl", "model/", "samples.md",
                 "summary.json"):
        print(f"  {out / name}")
    print(f"try: llmkit generate --checkpoint {out / 'model'} --prompt \"Return the\" --max-new-tokens 40")
