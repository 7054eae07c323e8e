"""`llmkit data prepare | steps | train-classifier`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from llmkit.errors import LlmkitError


def prepare(args: list[str], prog: str) -> None:
    """`llmkit data prepare`: the flags of `prepare_settings`; with --config FILE, the file's settings
    fill in every flag not given on the command line (a flag given there wins, even at its default)."""
    import tyro

    from llmkit.config import given_flags

    settings = tyro.cli(prepare_settings, args=args, prog=prog)
    run_prepare_settings(settings, given_flags(args))


def prepare_settings(out: str, input: list[str] | None = None, config: str | None = None, steps: str | None = None, workers: int = 1,
            tokenizer: str | None = None, vocab_size: int = 8192, decontaminate: list[str] | None = None,
            text_field: str = "text", task: str | None = None, executor: Literal["local", "ray"] = "local",
            ray_address: str | None = None,
            unit_mb: float = 32.0, rejected: bool = True, progress: bool = True, keep_work: bool = False,
            overwrite: bool = False) -> None:
    """Curate a corpus: read, clean, filter, deduplicate, scrub PII, decontaminate, tokenize and pack.

    Writes OUT/stats.json (per-step counts and removal reasons), OUT/rejected/ (dropped documents
    with step and reason), OUT/errors.jsonl (malformed input lines, file:line), and either token
    shards + OUT/index.json + OUT/tokenizer/ (when the steps end in tokenize, the default) or the
    surviving documents as JSONL under OUT/docs/. Re-running the same command resumes.

    A config with `sources:` (each a name, inputs, its own steps, and a weight or a token count)
    prepares a mixture instead: each source curated on its own, one tokenizer, shards sampled by the
    weights (small sources repeated, epochs counted); see docs/data.md.

    Args:
        out: output directory.
        input: .txt, .jsonl (.gz/.zst), .parquet or .warc[.gz]/.wet[.gz] files, directories or globs (a
            mixture config names its sources' inputs instead).
        config: YAML with any of these settings plus `steps: [{name: STEP, OPTION: VALUE}, ...]`, or
            `sources: [...]` (a mixture, with optional `total_tokens` and `seed`).
        steps: comma-separated step names to run, in this order (see `llmkit data steps`).
        workers: local worker processes; the output is identical for any number.
        tokenizer: tokenizer directory for the tokenize step; without it a BPE is trained on the survivors.
        vocab_size: vocabulary size of the tokenizer trained when --tokenizer is not given.
        decontaminate: evaluation files; documents sharing a 13-gram with them are dropped.
        text_field: the JSON/parquet field that holds the text.
        task: i/n runs only slice i of n of the first stage (a Slurm array); run again without it to merge.
        executor: local processes, or ray (the cluster at --ray-address or RAY_ADDRESS, else a local Ray).
        ray_address: an existing Ray cluster (HOST:PORT of `ray start --head`); OUT and the inputs must be
            on storage every node sees.
        unit_mb: size of one work unit of uncompressed input, in MB.
        rejected: keep dropped documents under OUT/rejected/.
        progress: show progress bars.
        keep_work: keep the intermediate OUT/.work directory after success.
        overwrite: write into a non-empty OUT that is not a `data prepare` output (only llmkit's files are
            replaced; inputs inside OUT are refused regardless).
    """
    return dict(input=input, out=out, config=config, steps=steps, workers=workers, tokenizer=tokenizer,
                vocab_size=vocab_size, decontaminate=decontaminate, text_field=text_field, task=task,
                executor=executor, ray_address=ray_address, unit_mb=unit_mb, rejected=rejected, progress=progress, keep_work=keep_work,
                overwrite=overwrite)


FILE_SETTINGS = ("workers", "tokenizer", "vocab_size", "decontaminate", "text_field", "executor", "ray_address",
                 "unit_mb", "rejected", "steps")


def run_prepare_settings(flags: dict, given: set[str]) -> None:
    """defaults < the --config file < flags given on the command line."""
    from llmkit.config import load_yaml, merge_settings
    from llmkit.data.pipeline import PrepareConfig
    from llmkit.data.pipeline import prepare as run_prepare

    from_file = load_yaml(flags["config"]) if flags["config"] else {}
    if "sources" in from_file:
        return _run_mixture(flags, given, from_file)
    if not flags["input"]:
        raise LlmkitError("give --input FILES (or a --config with sources: for a mixture)")
    step_list = from_file.pop("steps", None) if isinstance(from_file.get("steps"), list) else None
    signature = inspect.signature(prepare_settings)
    defaults = {name: signature.parameters[name].default for name in FILE_SETTINGS}
    s = merge_settings(defaults, from_file, {k: flags[k] for k in FILE_SETTINGS if k in given})
    chosen = resolve_steps(step_list, s["steps"], s["tokenizer"], s["vocab_size"], s["decontaminate"])
    run_prepare(PrepareConfig(inputs=flags["input"], out=flags["out"], steps=chosen, text_field=s["text_field"],
                              workers=s["workers"], unit_mb=s["unit_mb"], keep_rejected=s["rejected"],
                              task=flags["task"], executor=s["executor"], ray_address=s["ray_address"],
                              progress=flags["progress"],
                              keep_work=flags["keep_work"], overwrite=flags["overwrite"]))


def _run_mixture(flags: dict, given: set[str], from_file: dict) -> None:
    from llmkit.config import merge_settings
    from llmkit.data.mixture import MixtureConfig, MixtureSource, prepare_mixture

    if flags["input"]:
        raise LlmkitError("a mixture config names each source's inputs; drop --input")
    sources = from_file.pop("sources")
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise LlmkitError(f"{flags['config']}: sources must be a list of {{name, inputs, steps, weight | tokens}}")
    extra = {k: from_file.pop(k) for k in ("total_tokens", "seed", "val_fraction") if k in from_file}
    signature = inspect.signature(prepare_settings)
    defaults = {name: signature.parameters[name].default for name in FILE_SETTINGS}
    s = merge_settings(defaults, from_file, {k: flags[k] for k in FILE_SETTINGS if k in given})
    prepare_mixture(MixtureConfig(
        sources=[MixtureSource.from_dict(dict(src)) for src in sources], out=flags["out"], tokenizer=s["tokenizer"],
        vocab_size=s["vocab_size"], workers=s["workers"], executor=s["executor"], ray_address=s["ray_address"],
        progress=flags["progress"],
        overwrite=flags["overwrite"], **extra))


def resolve_steps(configured: list[dict] | None, names: str | None, tokenizer: str | None, vocab_size: int,
                  eval_files: list[str] | None) -> list[dict]:
    """The step list: from the config (or the default pipeline), narrowed and ordered by --steps."""
    from llmkit.data.steps import DEFAULT_STEPS, step_class

    base = [dict(s) for s in configured] if configured else [{"name": n} for n in DEFAULT_STEPS]
    if names:
        by_name = {s["name"]: s for s in base}
        base = [{**by_name.get(n.strip(), {"name": n.strip()}), "enabled": True} for n in names.split(",") if n.strip()]
    for step in base:
        step_class(step["name"])  # unknown names fail here with suggestions
        if step["name"] == "tokenize":
            step.setdefault("vocab_size", vocab_size)
            if tokenizer:
                step["tokenizer"] = tokenizer
        if step["name"] == "decontaminate" and eval_files:
            step["eval_files"] = list(eval_files)
    return base


def steps() -> None:
    """List the curation steps, what each does, and its options with their defaults (for --config)."""
    import dataclasses

    from llmkit.data.steps import DEFAULT_STEPS, STEPS, step_class

    for name in STEPS:
        cls = step_class(name)
        summary = (cls.__doc__ or "").strip().split("\n")[0]
        marker = "default" if name in DEFAULT_STEPS else "opt-in"
        print(f"{name} ({cls.scope}, {marker}): {summary}")
        for f in dataclasses.fields(cls.Options):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            print(f"    {f.name} = {default!r}")


def train_classifier(positive: list[str], negative: list[str], out: str, text_field: str = "text",
                     epochs: int = 5, buckets: int = 2**18, dim: int = 16, overwrite: bool = False) -> None:
    """Train the fastText-style quality classifier for the `classifier` step.

    Args:
        positive: files of reference-quality text (.txt, .jsonl, ...; as for `data prepare`).
        negative: files of text to filter out (e.g. raw web crawl).
        out: output directory (use it as `model:` of the classifier step).
        text_field: the JSON field that holds the text.
        epochs: passes over the data.
        buckets: hashed n-gram buckets.
        dim: embedding size.
        overwrite: write into a non-empty OUT that is not a classifier directory.
    """
    from llmkit.data.sources import iter_texts
    from llmkit.data.steps.classifier import train_classifier as train
    from llmkit.fileio import check_output

    check_output(out, "classifier", overwrite, [*positive, *negative])
    pos, neg = list(iter_texts(positive, text_field)), list(iter_texts(negative, text_field))
    model = train(pos, neg, epochs=epochs, buckets=buckets, dim=dim)
    model.save(out, overwrite)
    accuracy = sum(s >= 0.5 for s in model.score(pos)) + sum(s < 0.5 for s in model.score(neg))
    print(f"trained on {len(pos)} positive and {len(neg)} negative documents; "
          f"training accuracy {accuracy / (len(pos) + len(neg)):.3f}; saved to {out}")


def tasks(name: Positional[Literal["recall", "arithmetic", "copy", "sort", "safety"]], out: str, train: int = 1000,
          test: int = 100, seed: int = 0, overwrite: bool = False) -> None:
    """Write a built-in synthetic task set (no download) for fine-tuning and alignment.

    recall/arithmetic/copy/sort write OUT/train.jsonl and OUT/test.jsonl (records with prompt, answer
    and chat messages: SFT data, RL prompts, exact-match sets) and OUT/preferences_{train,test}.jsonl
    (the correct answer chosen over a wrong one). safety writes the three Llama-2 safety sets:
    sft.jsonl (refusals mixed with help), preferences.jsonl, rl_prompts.jsonl (with "harmful" flags
    for --reward-fn safe_response) and held-out harmful/benign prompts.

    Args:
        name: which task.
        out: output directory.
        train: training examples (ignored by safety, which is fixed-size).
        test: test examples (ignored by safety).
        seed: generation seed.
        overwrite: write into a non-empty OUT that does not hold task files (only llmkit's files are replaced).
    """
    from llmkit.fileio import check_output, mark_output

    check_output(out, "tasks", overwrite)
    if name == "safety":
        from llmkit.data.safety_sets import write_safety_sets

        paths = write_safety_sets(out, seed)
    else:
        from llmkit.data.synthetic_tasks import write_task

        paths = write_task(name, out, train, test, seed)
    mark_output(out, "tasks", [Path(p).name for p in paths.values()])
    for split, path in paths.items():
        print(f"{split:>20}: {path}")
