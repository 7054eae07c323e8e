"""The main job, `llmkit demo`: the model lifecycle on a CPU, writing everything under one
directory. Stages: corpus (2% of documents held out for evaluation, canary secrets planted) ->
curation + tokenizer -> pre-training -> samples -> SFT (LoRA) -> DPO -> compression trade-off and an
int8 copy of the aligned model -> evaluation of every stage's model -> one chat request to the
OpenAI-compatible server, answered by the aligned model -> the lifecycle report.

    runs/demo/
      report.html         the lifecycle report (one file, images embedded); report.md beside it
      corpus.jsonl        the training documents (built-in corpus or --input files, canaries planted)
      canaries.jsonl      the planted secrets (prefix + secret), for the privacy-leakage check
      data/               `llmkit data prepare` output: stats.json, rejected/, tokenizer/, token shards
      pretrain/           `llmkit pretrain` output: metrics.jsonl, loss_curve.png, final/ (HF layout + tokenizer)
      samples.md          greedy and sampled completions
      tasks/              the built-in copy and recall task sets (`llmkit data tasks`)
      sft/                `llmkit finetune --method lora` output on the copy task: adapter/, final/
      dpo/                `llmkit align --method dpo` output on the recall preferences: final/
      compress/           `llmkit compress report` on the pre-trained model: report.md, report.json, tradeoff.png;
                          dpo-int8/: the aligned model quantized int8 (a compressed checkpoint)
      eval/               tasks/ (held-out perplexity and cloze YAML + JSONL); one `llmkit evaluate`
                          results.json + results.md per model
      summary.json        what ran, how long, every stage's numbers
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from llmkit.data.canaries import make_canaries, plant_canaries, write_canaries
from llmkit.data.corpus import default_corpus, read_text_documents
from llmkit.data.loader import TokenDataset
from llmkit.data.pipeline import PrepareConfig, prepare
from llmkit.demo.compression_stage import quantize_for_serving, run_compression_stage
from llmkit.demo.evaluation_stage import (
    run_evaluation_stage,
    split_held_out,
    write_eval_tasks,
)
from llmkit.demo.lifecycle_report import write_lifecycle_report
from llmkit.demo.stages import StageLog, dir_size_mib
from llmkit.demo.tuning import run_dpo_stage, run_sft_stage
from llmkit.fileio import atomic_write_text, check_output, mark_output, write_json
from llmkit.infer.llm import LLM
from llmkit.model import named_config
from llmkit.train.config import DataConfig, OptimConfig, PretrainConfig, ScheduleConfig
from llmkit.train.pretrain import run_pretrain

PROMPTS = ["The list", "Return the", "This module provides", "If the file"]
CANARY_REPEATS = 20  # each planted secret appears in 20 training documents
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
    overwrite: bool = False  # run in a non-empty OUT that is not a demo's
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
    precision: str = "auto"  # pre-training: bf16 where the CPU has bf16 matrix units (AMX, AVX-512 BF16), else fp32
    progress: bool = True


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(cfg: DemoConfig) -> dict:
    out, started, log_ = Path(cfg.out), time.perf_counter(), StageLog()
    named_config(cfg.model)  # fail on a bad name before minutes of work, not after
    check_output(out, "demo", cfg.overwrite, cfg.input or [])
    mark_output(out, "demo")
    torch.manual_seed(cfg.seed)
    docs = read_text_documents(cfg.input) if cfg.input else default_corpus()
    docs, held_out = split_held_out(docs)
    canaries = make_canaries()
    docs = plant_canaries(docs, canaries, repeats=CANARY_REPEATS, seed=cfg.seed)
    atomic_write_text(out / "corpus.jsonl", "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    write_canaries(canaries, out / "canaries.jsonl")
    shutil.rmtree(out / "eval", ignore_errors=True)  # task files and results of an earlier run
    write_eval_tasks(held_out, out / "eval" / "tasks", cfg.seed)
    log(f"corpus: {len(docs):,} documents, {sum(map(len, docs)):,} characters -> {out / 'corpus.jsonl'} "
        f"({len(held_out)} held out for evaluation; {len(canaries)} canary secrets planted "
        f"{CANARY_REPEATS} times each)")

    with log_.stage("curate + tokenizer") as row:
        stats = _curate(cfg, out)
        train_data = TokenDataset(out / "data", "train")
        row |= {"size_mib": dir_size_mib(out / "data"), "quality": f"{stats['docs_in']:,} -> {stats['docs_out']:,} "
                f"documents, {len(train_data):,} training tokens"}
    log(f"tokens: {len(train_data):,} train, {len(TokenDataset(out / 'data', 'val')):,} validation")

    with log_.stage("pre-train") as row:
        result = _pretrain(cfg, out)
        llm = LLM.load(out / "pretrain" / "final")
        parameters = sum(p.numel() for p in llm.model.parameters())
        row |= {"tokens_per_s": result["tokens"] / result["seconds"], "parameters": parameters, "trainable": parameters,
                "size_mib": dir_size_mib(out / "pretrain" / "final"),
                "quality": f"loss {result['first_loss']:.2f} -> {result['final_loss']:.2f}, "
                           f"validation perplexity {result['val_perplexity']:.1f}"}
    samples = _sample(llm, cfg)
    atomic_write_text(out / "samples.md", samples)
    print(samples)

    with log_.stage("SFT (LoRA)") as row:
        sft = run_sft_stage(out / "pretrain" / "final", out, cfg.sft_steps, cfg.seed, cfg.progress)
        row |= {"tokens_per_s": _mean_rate(out / "sft" / "metrics.jsonl", "positions_per_s"), "parameters": parameters,
                "trainable": sft["trainable_parameters"], "size_mib": dir_size_mib(out / "sft" / "adapter"),
                "quality": f"copy exact match {sft['exact_match_before']:.0%} -> {sft['exact_match_after']:.0%}"}
    with log_.stage("DPO") as row:
        dpo = run_dpo_stage(out / "sft" / "final", out, cfg.dpo_steps, cfg.seed, cfg.progress)
        row |= {"tokens_per_s": _mean_rate(out / "dpo" / "metrics.jsonl", "positions_per_s"), "parameters": parameters,
                "trainable": dpo["trainable_parameters"], "size_mib": dir_size_mib(out / "dpo" / "final"),
                "quality": f"preference accuracy {dpo['preference_accuracy_before']:.0%} -> "
                           f"{dpo['preference_accuracy_after']:.0%}, copy kept at {dpo['copy_exact_match_after_dpo']:.0%}"}
    with log_.stage("compress") as row:
        compression = run_compression_stage(out / "pretrain" / "final", out / "data", out / "compress")
        int8_dir = quantize_for_serving(out / "dpo" / "final", out / "compress" / "dpo-int8")
        best = min(compression[1:], key=lambda r: r["size_vs_fp32"] + 10 * max(r["perplexity_vs_fp32"] - 1, 0))
        row |= {"tokens_per_s": compression[0]["decode_tokens_per_s"], "size_mib": dir_size_mib(int8_dir),
                "quality": f"{len(compression) - 1} methods; {best['method']}: {best['size_vs_fp32']:.0%} of the size, "
                           f"perplexity {best['perplexity_vs_fp32'] - 1:+.2%}"}
    with log_.stage("evaluate") as row:
        checkpoints = {"pre-trained": out / "pretrain" / "final", "SFT": out / "sft" / "final",
                       "DPO": out / "dpo" / "final", "DPO int8": int8_dir}
        evaluation = run_evaluation_stage(checkpoints, out / "eval" / "tasks", out / "eval")
        row["quality"] = f"{len(evaluation)} models x {len(next(iter(evaluation.values())))} tasks (table below)"
    with log_.stage("serve") as row:
        served = _serve_one_chat(LLM.load(out / "dpo" / "final"), out / "dpo" / "final", cfg)
        row |= {"tokens_per_s": served["completion_tokens"] / served["seconds"],
                "quality": f"{CHAT_QUESTION!r} -> {' '.join(served['reply'].split())!r}"}
    summary = {
        "config": asdict(cfg), "documents": len(docs), "documents_held_out": len(held_out),
        "documents_kept": stats["docs_out"], "train_tokens": len(train_data),
        "parameters": parameters, "steps": result["steps"], "precision": result["precision"],
        "first_loss": result["first_loss"], "final_loss": result["final_loss"],
        "val_loss": result["val_loss"], "val_perplexity": result["val_perplexity"],
        "tokens_per_s": result["tokens"] / result["seconds"], "train_seconds": result["seconds"],
        "sft": sft, "dpo": dpo, "compression": compression, "evaluation": evaluation, "served_chat": served,
        "stages": log_.rows, "total_seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    write_lifecycle_report(out, summary)
    _report(out, summary)
    return summary


def _mean_rate(metrics: Path, key: str) -> float | None:
    rates = [json.loads(line).get(key) for line in metrics.read_text().splitlines()[1:]]
    rates = [r for r in rates if r]
    return sum(rates) / len(rates) if rates else None


def _curate(cfg: DemoConfig, out: Path) -> dict:
    log("curating: normalize, language, gopher, toxicity, exact + near dedup, PII, then BPE + token shards")
    shutil.rmtree(out / "data", ignore_errors=True)  # the corpus may differ from the last run's
    steps = CURATION_STEPS + [{"name": "tokenize", "vocab_size": cfg.vocab_size, "val_fraction": 0.05}]
    return prepare(PrepareConfig(inputs=[str(out / "corpus.jsonl")], out=str(out / "data"), steps=steps,
                                 workers=2, unit_mb=0.5, progress=cfg.progress))


def pretrain_precision(asked: str) -> tuple[str, str]:
    """(precision, why): "auto" picks bf16 autocast where bf16 matmuls run on matrix units."""
    from llmkit.host.ceilings import bf16_is_fast, matrix_units

    if asked != "auto":
        return asked, "as asked"
    if bf16_is_fast():
        return "bf16", f"this CPU has bf16 matrix units ({', '.join(matrix_units())})"
    return "fp32", "this CPU has no bf16 matrix units (bf16 would be emulated, slower than fp32)"


def _pretrain(cfg: DemoConfig, out: Path) -> dict:
    precision, why = pretrain_precision(cfg.precision)
    log(f"pre-training {cfg.model} with `llmkit pretrain` for up to {cfg.minutes} min / {cfg.max_steps} steps, "
        f"in {precision}: {why}")
    result = run_pretrain(PretrainConfig(precision=precision,
        data=str(out / "data"), out=str(out / "pretrain"), model=cfg.model, max_steps=cfg.max_steps,
        max_minutes=cfg.minutes, eval_every=0, eval_batches=50, seed=cfg.seed, progress=cfg.progress,
        optim=OptimConfig(lr=cfg.lr), schedule=ScheduleConfig(warmup_steps=min(50, cfg.max_steps // 10 + 1)),
        batch=DataConfig(seq_len=cfg.seq_len, batch_size=cfg.batch_size)))
    losses = [json.loads(line)["loss"] for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    result |= {"first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]), "precision": precision}
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
    for name in ("report.html", "report.md", "corpus.jsonl", "data/stats.json", "data/rejected/",
                 "pretrain/metrics.jsonl", "pretrain/loss_curve.png", "pretrain/final/", "samples.md", "sft/final/",
                 "dpo/final/", "compress/report.md", "compress/tradeoff.png", "compress/dpo-int8/", "eval/",
                 "summary.json"):
        print(f"  {out / name}")
    print(f"try: llmkit generate --checkpoint {out / 'pretrain' / 'final'} --prompt \"Return the\" --max-new-tokens 40")
    print(f"     llmkit serve --checkpoint {out / 'dpo' / 'final'}   # then any OpenAI client on http://127.0.0.1:8000/v1")
    print(f"     llmkit chat --checkpoint {out / 'dpo' / 'final'}   # try: Repeat: sun ship bell")
