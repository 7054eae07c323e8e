"""Data mixtures: several sources, each curated with its own steps, mixed by weight or token count
into one set of token shards (the way pre-training corpora are built: web, code, books, papers...).

    sources:
      - name: web
        inputs: [crawl/*.warc.gz]
        steps: [{name: html_extract}, {name: language}, {name: gopher}, {name: exact_dedup}]
        weight: 0.7
      - name: code
        inputs: [code/]
        steps: [{name: exact_dedup}]
        tokens: 2000000        # or a target token count instead of a weight

Each source runs through `data prepare` on its own (OUT/sources/NAME/curated, resumable), one
tokenizer serves all (given, or trained on every source's survivors), and each source is tokenized
(OUT/sources/NAME/tokens). A source's target is `weight x total` (total: `total_tokens`, default
the sources' summed size) or its `tokens`; a source below its target is repeated (epoch e in its
own seeded document order), one above it is cut. Documents are then interleaved so that every
prefix of the training stream follows the targets' proportions (the source furthest behind its
share goes next), and each shard records which source each document came from: the loader counts
tokens per source in its state, and resumes at the same place in the mixture.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmkit.data.pipeline import PrepareConfig, prepare
from llmkit.data.shards import INDEX_FILE, ShardWriter, read_index
from llmkit.data.steps import step_class
from llmkit.errors import LlmkitError
from llmkit.fileio import write_json


@dataclass
class MixtureSource:
    name: str
    inputs: list[str]
    steps: list[dict] = field(default_factory=list)  # without tokenize (the mixture tokenizes)
    weight: float | None = None
    tokens: int | None = None
    text_field: str = "text"

    @classmethod
    def from_dict(cls, values: dict) -> MixtureSource:
        unknown = set(values) - {"name", "inputs", "steps", "weight", "tokens", "text_field"}
        if unknown or "name" not in values or "inputs" not in values:
            raise LlmkitError(f"each mixture source needs name and inputs (and weight or tokens); got {sorted(values)}"
                              + (f", unknown {sorted(unknown)}" if unknown else ""))
        source = cls(**values)
        if (source.weight is None) == (source.tokens is None):
            raise LlmkitError(f"mixture source {source.name!r}: give exactly one of weight or tokens")
        if any(s.get("name") == "tokenize" for s in source.steps):
            raise LlmkitError(f"mixture source {source.name!r}: leave tokenize out of its steps (the mixture tokenizes)")
        for step in source.steps:
            step_class(step["name"])
        return source


@dataclass
class MixtureConfig:
    sources: list[MixtureSource]
    out: str
    tokenizer: str | None = None
    vocab_size: int = 8192
    total_tokens: int | None = None  # what the weights divide; default: the sources' summed size
    seed: int = 0
    val_fraction: float = 0.01
    workers: int = 1
    executor: str = "local"
    ray_address: str | None = None
    progress: bool = True
    overwrite: bool = False


def prepare_mixture(cfg: MixtureConfig) -> dict:
    names = [s.name for s in cfg.sources]
    if len(set(names)) != len(names) or not names:
        raise LlmkitError(f"mixture source names must be unique and at least one: {names}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(workers=cfg.workers, executor=cfg.executor, ray_address=cfg.ray_address, progress=cfg.progress)
    curated = {}
    for source in cfg.sources:
        curated[source.name] = prepare(PrepareConfig(inputs=source.inputs, out=str(out / "sources" / source.name / "curated"),
                                                     steps=source.steps, text_field=source.text_field,
                                                     overwrite=cfg.overwrite, **common))
    tokenizer_dir = _tokenizer(cfg, out)
    for source in cfg.sources:
        docs = out / "sources" / source.name / "curated" / "docs"
        if not docs.is_dir():
            raise LlmkitError(f"mixture source {source.name!r}: no document survived its steps; relax them")
        prepare(PrepareConfig(inputs=[str(docs)], out=str(out / "sources" / source.name / "tokens"),
                              steps=[{"name": "tokenize", "tokenizer": str(tokenizer_dir),
                                      "val_fraction": cfg.val_fraction}], text_field=source.text_field,
                              overwrite=cfg.overwrite, **common))
    rows = _mix(cfg, out, tokenizer_dir)
    stats = {"mixture": rows, "sources": curated, "docs_in": sum(c.get("docs_in", 0) for c in curated.values()),
             "docs_out": sum(c.get("docs_out", 0) for c in curated.values())}
    write_json(out / "stats.json", stats)
    for row in rows:
        print(f"{row['name']:<12} {row['tokens_available']:>12,} tokens available -> {row['tokens_target']:>12,} "
              f"({row['share']:.1%} of the mixture, {row['epochs']:.2f} epochs)")
    return stats


def _tokenizer(cfg: MixtureConfig, out: Path) -> Path:
    if cfg.tokenizer:
        return Path(cfg.tokenizer)
    path = out / "tokenizer"
    if (path / "tokenizer.json").is_file():
        return path
    step = step_class("tokenize").from_dict({"vocab_size": cfg.vocab_size})
    fields = {f: s.text_field for s in cfg.sources
              for f in sorted((out / "sources" / s.name / "curated" / "docs").glob("*.jsonl"))}  # file -> its text field
    files = list(fields)

    def read_docs(file: Path):
        with open(file, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                yield record, record[fields[file]]

    return step.prepare_tokenizer(files, path, read_docs)


def _documents(data_dir: Path, split: str) -> tuple[np.memmap, list[tuple[int, int]]]:
    """One source split as (token stream, [(start, length) per document])."""
    from llmkit.data.loader import TokenDataset

    try:
        data = TokenDataset(data_dir, split)
    except LlmkitError:
        return np.zeros(0, np.int64), []
    starts = data.doc_starts.tolist() + [len(data)]
    return data, [(a, b - a) for a, b in zip(starts[:-1], starts[1:]) if b > a]


def targets(available: dict[str, int], sources: list[MixtureSource], total: int | None) -> dict[str, int]:
    """Tokens each source contributes: its `tokens`, or its weight's share of the total."""
    weighted = [s for s in sources if s.weight is not None]
    weight_sum = sum(s.weight for s in weighted)
    fixed = sum(s.tokens for s in sources if s.tokens is not None)
    pool = (total if total is not None else sum(available.values())) - (fixed if total is not None else 0)
    if weighted and (weight_sum <= 0 or any(s.weight < 0 for s in weighted)):
        raise LlmkitError("mixture weights must be non-negative and not all zero")
    return {s.name: int(s.tokens) if s.tokens is not None else int(round(max(pool, 0) * s.weight / weight_sum))
            for s in sources}


def _schedule(docs: list[tuple[int, int]], target: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(start, length, epoch) of the documents that make up `target` tokens: whole epochs in a new
    seeded order each, then part of one more."""
    picked, total, epoch = [], 0, 0
    while total < target and docs:
        for i in rng.permutation(len(docs)) if epoch else range(len(docs)):
            if total >= target:
                break
            picked.append((*docs[i], epoch))
            total += docs[i][1]
        epoch += 1
    return picked


def _mix(cfg: MixtureConfig, out: Path, tokenizer_dir: Path) -> list[dict]:
    vocabulary = read_index(out / "sources" / cfg.sources[0].name / "tokens")  # every source: the same tokenizer
    dtype = np.dtype(vocabulary["dtype"]).newbyteorder("<")
    for old in list(out.glob("train-*.bin")) + list(out.glob("val-*.bin")):
        old.unlink()
    streams = {s.name: _documents(out / "sources" / s.name / "tokens", "train") for s in cfg.sources}
    available = {name: sum(n for _, n in docs) for name, (_, docs) in streams.items()}
    wanted = targets(available, cfg.sources, cfg.total_tokens)
    plans = {s.name: _schedule(streams[s.name][1], wanted[s.name], np.random.default_rng([cfg.seed, i]))
             for i, s in enumerate(cfg.sources)}
    writer = ShardWriter(out, "train", dtype, 2**24)
    emitted, cursor, doc_sources = dict.fromkeys(plans, 0), dict.fromkeys(plans, 0), []
    while True:  # the source furthest behind its share of the stream goes next
        open_sources = [n for n in plans if cursor[n] < len(plans[n])]
        if not open_sources:
            break
        name = min(open_sources, key=lambda n: (emitted[n] / max(wanted[n], 1), list(plans).index(n)))
        start, length, _ = plans[name][cursor[name]]
        writer.add(np.asarray(streams[name][0].tokens(start, length) if length else [], dtype=np.int64))
        doc_sources.append(list(plans).index(name))
        emitted[name] += length
        cursor[name] += 1
    writer.close()
    val_writer = ShardWriter(out, "val", dtype, 2**24)
    val_sources = []
    for index, source in enumerate(cfg.sources):
        data, docs = _documents(out / "sources" / source.name / "tokens", "val")
        for start, length in docs:
            val_writer.add(np.asarray(data.tokens(start, length), dtype=np.int64))
            val_sources.append(index)
    val_writer.close()
    if not writer.documents:
        raise LlmkitError("the mixture is empty: every source's target is 0 tokens or nothing survived curation")
    _attach_sources(writer.shards, doc_sources)
    _attach_sources(val_writer.shards, val_sources)
    total = sum(emitted.values())
    rows = [{"name": n, "weight": s.weight, "tokens_requested": s.tokens, "tokens_available": available[n],
             "tokens_target": wanted[n], "tokens": emitted[n], "share": emitted[n] / max(total, 1),
             "epochs": emitted[n] / max(available[n], 1), "documents": cursor[n]}
            for n, s in zip(plans, cfg.sources)]
    if tokenizer_dir.resolve() != (out / "tokenizer").resolve():  # a trained one is there already
        shutil.copytree(tokenizer_dir, out / "tokenizer", dirs_exist_ok=True)
    write_json(out / INDEX_FILE, {
        "format": "llmkit-tokens-v1", "dtype": vocabulary["dtype"], "vocab_size": vocabulary["vocab_size"],
        "eos_id": vocabulary["eos_id"],
        "tokenizer": "tokenizer", "train": writer.shards, "val": val_writer.shards,
        "documents": {"train": writer.documents, "val": val_writer.documents},
        "mixture": [{"name": r["name"], "tokens": r["tokens"], "epochs": r["epochs"]} for r in rows]})
    read_index(out)
    return rows


def _attach_sources(shards: list[dict], sources: list[int]) -> None:
    """Each shard's `doc_sources`: the source index of every document starting in it."""
    position = 0
    for shard in shards:
        count = len(shard["doc_starts"])
        shard["doc_sources"] = sources[position: position + count]
        position += count
    if position != len(sources):
        raise LlmkitError("internal: documents and their sources do not line up")  # a bug, not bad input
