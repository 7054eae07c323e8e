"""The main job, `llmkit demo`: the model lifecycle on a CPU, writing everything under one
directory. Stages so far: corpus -> curation + tokenizer -> pre-training -> checkpoint -> samples -> SFT (LoRA)
-> DPO -> compression trade-off -> one chat request to the OpenAI-compatible server, answered by the
aligned model.

    runs/demo/
      corpus.jsonl        the documents used (built-in corpus or --input files)
      data/               `llmkit data prepare` output: stats.json, rejected/, tokenizer/, token shards
      pretrain/           `llmkit pretrain` output: metrics.jsonl, loss_curve.png, final/ (HF layout + tokenizer)
      samples.md          greedy and sampled completions
      tasks/              the built-in copy and recall task sets (`llmkit data tasks`)
      sft/                `llmkit finetune --method lora` output on the copy task: adapter/, final/
      dpo/                `llmkit align --method dpo` output on the recall preferences: final/
      compress/           `llmkit compress report` on the pre-trained model: report.md, report.json, tradeoff.png
      summary.json        what ran, how long, the losses, the served chat reply
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from llmkit.data.corpus import default_corpus, read_text_documents
from llmkit.data.loader import TokenDataset
from llmkit.data.pipeline import PrepareConfig, prepare
from llmkit.demo.compression_stage import run_compression_stage
from llmkit.demo.tuning import run_dpo_stage, run_sft_stage
from llmkit.fileio import atomic_write_text, write_json
from llmkit.infer.llm import LLM
from llmkit.model import named_config
from llmkit.train.config import DataConfig, OptimConfig, PretrainConfig, ScheduleConfig
from llmkit.train.pretrain import run_pretrain

PROMPTS = ["The list", "Return the", "This module provides", "If the file"]
CHAT_QUESTION = "Repeat: lamp river bird"  # a copy-task prompt the fine-tuned model never saw
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
    sft_steps: int = 500
    dpo_steps: int = 300
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
    log(f"tokens: {len(train_data):,} train, {len(TokenDataset(out / 'data', 'val')):,} validation")

    result = _pretrain(cfg, out)
    llm = LLM.load(out / "pretrain" / "final")
    log(f"checkpoint -> {out / 'pretrain' / 'final'}")

    samples = _sample(llm, cfg)
    atomic_write_text(out / "samples.md", samples)
    print(samples)
    sft = run_sft_stage(out / "pretrain" / "final", out, cfg.sft_steps, cfg.seed, cfg.progress)
    dpo = run_dpo_stage(out / "sft" / "final", out, cfg.dpo_steps, cfg.seed, cfg.progress)
    compression = run_compression_stage(out / "pretrain" / "final", out / "data", out / "compress")
    served = _serve_one_chat(LLM.load(out / "dpo" / "final"), out / "dpo" / "final", cfg)
    summary = {
        "config": asdict(cfg), "documents": len(docs), "documents_kept": stats["docs_out"],
        "train_tokens": len(train_data),
        "parameters": sum(p.numel() for p in llm.model.parameters()), "steps": result["steps"],
        "first_loss": result["first_loss"], "final_loss": result["final_loss"],
        "val_loss": result["val_loss"], "val_perplexity": result["val_perplexity"],
        "tokens_per_s": result["tokens"] / result["seconds"], "train_seconds": result["seconds"],
        "sft": sft, "dpo": dpo, "compression": compression, "served_chat": served,
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


def _pretrain(cfg: DemoConfig, out: Path) -> dict:
    log(f"pre-training {cfg.model} with `llmkit pretrain` for up to {cfg.minutes} min / {cfg.max_steps} steps")
    result = run_pretrain(PretrainConfig(
        data=str(out / "data"), out=str(out / "pretrain"), model=cfg.model, max_steps=cfg.max_steps,
        max_minutes=cfg.minutes, eval_every=0, eval_batches=50, seed=cfg.seed, progress=cfg.progress,
        optim=OptimConfig(lr=cfg.lr), schedule=ScheduleConfig(warmup_steps=min(50, cfg.max_steps // 10 + 1)),
        batch=DataConfig(seq_len=cfg.seq_len, batch_size=cfg.batch_size)))
    losses = [json.loads(line)["loss"] for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    result |= {"first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:])}
    log(f"trained {result['steps']} steps in {result['seconds']:.0f}s ({result['tokens'] / result['seconds']:,.0f} "
        f"tokens/s): loss {result['first_loss']:.2f} -> {result['final_loss']:.2f}, validation loss {result['val_loss']:.2f}")
    return result


def _sample(llm: LLM, cfg: DemoConfig) -> str:
    greedy = llm.generate(PROMPTS, max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    sampled = llm.generate(PROMPTS, max_new_tokens=cfg.max_new_tokens, temperature=0.8, top_k=50, seed=cfg.seed)
    show = lambda text: text.replace("\n", " ↵ ")  # keep each sample on one line
    lines = ["# Samples", ""]
    for prompt, g, s in zip(PROMPTS, greedy, sampled):
        lines += [f"**{prompt}**", f"- greedy: {prompt}{show(g)}",
                  f"- sampled (T=0.8, top-k 50): {prompt}{show(s)}", ""]
    return "\n".join(lines)


def _serve_one_chat(llm: LLM, checkpoint: Path, cfg: DemoConfig) -> dict:
    """Start the OpenAI-compatible server on the aligned demo model (on a free loopback port), send one
    chat request with the `openai` client, print the reply, stop the server."""
    import openai

    from llmkit.serve.server import BackgroundServer, build_state

    state = build_state(checkpoint, llm=llm, model_name="demo")
    with BackgroundServer(state) as url:
        log(f"serving the demo model at {url}/v1; asking it one chat question with the openai client")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed")
        started = time.perf_counter()
        reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": CHAT_QUESTION}],
                                               max_tokens=cfg.max_new_tokens, temperature=0.0, seed=cfg.seed)
        seconds = time.perf_counter() - started
    text = reply.choices[0].message.content
    print(f"chat> {CHAT_QUESTION}\nreply> {' '.join(text.split()) or '(only whitespace)'}\n")
    return {"question": CHAT_QUESTION, "reply": text, "seconds": seconds,
            "completion_tokens": reply.usage.completion_tokens}


def _report(out: Path, summary: dict) -> None:
    log(f"done in {summary['total_seconds']:.0f}s. Outputs in {out.resolve()}:")
    for name in ("corpus.jsonl", "data/stats.json", "data/rejected/", "pretrain/metrics.jsonl",
                 "pretrain/loss_curve.png", "pretrain/final/", "samples.md", "sft/final/", "dpo/final/", "compress/report.md",
                 "compress/tradeoff.png", "summary.json"):
        print(f"  {out / name}")
    print(f"try: llmkit generate --checkpoint {out / 'pretrain' / 'final'} --prompt \"Return the\" --max-new-tokens 40")
    print(f"     llmkit serve --checkpoint {out / 'dpo' / 'final'}   # then any OpenAI client on http://127.0.0.1:8000/v1")
    print(f"     llmkit chat --checkpoint {out / 'dpo' / 'final'}   # try: Repeat: sun ship bell")
