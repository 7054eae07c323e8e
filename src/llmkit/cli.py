"""The verb table. Each verb is a typed function in its own package (`commands.py`), turned into
flags by tyro from its signature and docstring; modules load only when their verb runs, so
`llmkit --help` imports neither torch nor transformers."""

from __future__ import annotations

import difflib
import errno
import importlib
import sys

# verb -> (module:function, one-line summary); a dict value is a verb group ("llmkit tokenizer train").
VERBS: dict[str, tuple[str, str] | dict[str, tuple[str, str]]] = {
    "demo": ("llmkit.demo.commands:demo", "Run the lifecycle end to end on the built-in corpus (writes runs/demo/)"),
    "models": ("llmkit.model.commands:models", "List named model configs with exact parameter counts"),
    "data": {
        "prepare": ("llmkit.data.commands:prepare", "Curate a corpus into token shards or clean JSONL"),
        "steps": ("llmkit.data.commands:steps", "List the curation steps and their options"),
        "train-classifier": ("llmkit.data.commands:train_classifier", "Train the quality classifier step's model"),
        "tasks": ("llmkit.data.commands:tasks", "Write a built-in synthetic task set (recall, arithmetic, safety...)"),
    },
    "tokenizer": {
        "train": ("llmkit.tokenizer.commands:train", "Train a byte-level BPE tokenizer on text files"),
    },
    "pretrain": ("llmkit.train.commands:pretrain", "Pre-train a model on prepared token shards (1 CPU to torchrun)"),
    "finetune": ("llmkit.finetune.commands:finetune", "Supervised fine-tuning (full, LoRA, QLoRA, adapters, prompts) on chat JSONL"),
    "align": ("llmkit.finetune.commands:align", "Preference optimisation (DPO, IPO, SimPO, ORPO) or RL (PPO, GRPO)"),
    "reward": {
        "train": ("llmkit.finetune.commands:reward_train", "Train a Bradley-Terry reward model on preference pairs"),
    },
    "merge": ("llmkit.finetune.commands:merge", "Fold a LoRA adapter into a checkpoint's weights"),
    "compress": {
        "quantize": ("llmkit.compress.commands:quantize", "Quantize a checkpoint (int8, int4, GPTQ, AWQ) for generate/serve"),
        "prune": ("llmkit.compress.commands:prune", "Prune a checkpoint (magnitude, Wanda, SparseGPT; N:M patterns)"),
        "lowrank": ("llmkit.compress.commands:lowrank", "Factorise a checkpoint's Linears by (activation-aware) SVD"),
        "share": ("llmkit.compress.commands:share", "Share weights across consecutive layers (ALBERT-style), then heal"),
        "report": ("llmkit.eval.commands:compression_report", "Compare compression methods: size, speed, perplexity"),
        "distill": ("llmkit.compress.commands:distill", "Distil a teacher checkpoint into a student model (logit KD)"),
    },
    "convert": ("llmkit.checkpoint.commands:convert", "Convert a GGUF file (llama.cpp) into an HF-layout checkpoint"),
    "export": {
        "gguf": ("llmkit.checkpoint.commands:export_gguf", "Write a checkpoint as GGUF (f16, q8_0, q4_0) for llama.cpp"),
    },
    "evaluate": ("llmkit.eval.commands:evaluate", "Score a checkpoint on benchmark tasks (perplexity, choice, generation, security)"),
    "lm-eval": ("llmkit.eval.commands:lm_eval", "lm-evaluation-harness with `--model llmkit` registered (its own flags)"),
    "plan": ("llmkit.train.commands:plan", "Memory per device, fit, time and cost of training strategies"),
    "generate": ("llmkit.infer.commands:generate", "Complete a prompt with a checkpoint"),
    "serve": ("llmkit.serve.commands:serve", "Serve a checkpoint over an OpenAI-compatible HTTP API"),
    "chat": ("llmkit.serve.commands:chat", "Chat with a checkpoint in the terminal (streamed)"),
}
# Out of space, over quota, no permission, read-only: the user's environment, not a bug.
FILE_SYSTEM_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}
# Verbs configured by a dataclass take the raw argument list (for --config FILE + flag overrides).
RAW_ARGS = {"llmkit.train.commands:pretrain", "llmkit.finetune.commands:finetune", "llmkit.finetune.commands:align",
            "llmkit.finetune.commands:reward_train", "llmkit.compress.commands:distill",
            "llmkit.eval.commands:lm_eval", "llmkit.data.commands:prepare"}


def _usage(prefix: str, table: dict) -> str:
    lines = [f"usage: {prefix} VERB [--help] [FLAGS] [--threads N]", "",
             "--threads N (any verb): torch CPU threads; default: the CPUs this process may use",
             "--config FILE.yaml (any verb): the verb's settings by flag name; flags given on the command line win",
             "", "verbs:"]
    for name, entry in table.items():
        summary = entry[1] if isinstance(entry, tuple) else f"{', '.join(entry)} (see `{prefix} {name} --help`)"
        lines.append(f"  {name:<12} {summary}")
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str, str, list[str]] | int:
    """(target, prog, remaining args), or an exit code after printing help or an error."""
    table, prog = VERBS, "llmkit"
    while True:
        if not argv or argv[0] in ("-h", "--help"):
            print(_usage(prog, table))
            return 0
        verb, argv = argv[0], argv[1:]
        if verb not in table:
            close = difflib.get_close_matches(verb, table, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            print(f"{prog}: error: unknown verb {verb!r}.{hint} Run `{prog} --help` for the list.", file=sys.stderr)
            return 2
        entry, prog = table[verb], f"{prog} {verb}"
        if isinstance(entry, tuple):
            return entry[0], prog, argv
        table = entry


def _pop_threads(args: list[str]) -> tuple[int | None, list[str]] | str:
    """--threads N (or --threads=N) taken out of the verb's arguments; a message when N is bad."""
    for i, arg in enumerate(args):
        if arg == "--threads" or arg.startswith("--threads="):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            rest = args[:i] + args[i + (1 if "=" in arg else 2):]
            if not value.isdigit() or int(value) < 1:
                return f"--threads needs a positive whole number, got {value!r}"
            return int(value), rest
    return None, args


def main(argv: list[str] | None = None) -> int:
    resolved = _resolve(sys.argv[1:] if argv is None else list(argv))
    if isinstance(resolved, int):
        return resolved
    target, prog, rest = resolved
    threads = _pop_threads(rest)
    if isinstance(threads, str):
        print(f"{prog}: error: {threads}", file=sys.stderr)
        return 2
    threads, rest = threads
    if "-h" not in rest and "--help" not in rest:
        from llmkit.host.cpus import set_torch_threads

        set_torch_threads(threads)
    module_name, function_name = target.split(":")
    import tyro

    from llmkit.errors import LlmkitError

    function = getattr(importlib.import_module(module_name), function_name)
    try:
        if target in RAW_ARGS:
            function(rest, prog)
        else:
            from llmkit.config import pop_config_file, with_file_defaults

            path, rest = pop_config_file(rest)
            tyro.cli(with_file_defaults(function, path) if path else function, args=rest, prog=prog)
    except LlmkitError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except OSError as err:
        if err.errno not in FILE_SYSTEM_ERRORS:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"{prog}: error: {err.strerror}{where}; outputs are written whole or not at all, so free space or fix "
              "permissions and run again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
