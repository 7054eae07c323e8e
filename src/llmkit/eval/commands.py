"""`llmkit evaluate` and `llmkit compress report` (they measure models, so they live above inference)."""

from __future__ import annotations


def compression_report(checkpoint: str, eval: str, out: str, methods: list[str] | None = None,
                       peak_memory: bool = False, overwrite: bool = False) -> None:
    """Apply each compression method to CHECKPOINT and compare size, weight memory, decode speed and
    validation perplexity against the uncompressed model: OUT/report.md, report.json, tradeoff.png.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        eval: a prepared data directory (`llmkit data prepare`): its val split scores, its train split calibrates.
        out: output directory.
        methods: methods to compare (default: all of int8 int4 gptq awq magnitude wanda sparsegpt
            wanda-2:4 sparsegpt-2:4 lowrank heads channels layers).
        peak_memory: also measure the peak resident memory of a fresh process that loads each saved
            checkpoint and decodes (Linux; a few seconds per method).
        overwrite: write into a non-empty OUT that is not a compression report (only llmkit's files are replaced).
    """
    from llmkit.eval.compression_report import ALL_METHODS, markdown_table
    from llmkit.eval.compression_report import compression_report as run
    from llmkit.fileio import check_output, mark_output

    check_output(out, "report", overwrite, [checkpoint, eval])
    mark_output(out, "report", ["report.json", "report.md", "tradeoff.png"])

    rows = run(checkpoint, eval, list(methods or ALL_METHODS), out, peak_memory=peak_memory)
    print(markdown_table(rows))
    print(f"-> {out}/report.md, report.json, tradeoff.png")


def evaluate(checkpoint: str, tasks: list[str], out: str, data_dir: str | None = None, data: list[str] | None = None,
             shots: int | None = None, seed: int = 1234, chat: bool = False,
             cot: bool = False, self_consistency: int = 0, samples: int = 1, temperature: float = 0.7,
             code_timeout: float = 10.0, system: str | None = None,
             limit: int | None = None, batch_size: int = 16, stride: int | None = None, perturb: float = 0.0,
             max_new_tokens: int | None = None, device: str = "cpu", progress: bool = True,
             overwrite: bool = False, dtype: str = "auto", adapter: str | None = None) -> None:
    """Evaluate CHECKPOINT on TASKS and write OUT/results.json and OUT/results.md.

    Args:
        checkpoint: a checkpoint directory (HF layout, or a compressed one from `llmkit compress`).
        tasks: standard benchmarks read from local files (mmlu, hellaswag, arc_easy, arc_challenge,
            winogrande, piqa, boolq, truthfulqa_mc1, truthfulqa_mc2, openbookqa, gsm8k, gsm8k_cot,
            gsm8k_cot_zeroshot, triviaqa, nq_open, humaneval, mbpp; mmlu_SUBJECT for one subject), task
            YAML files (local JSONL data), or built-in names: arithmetic, copy, recall, sort,
            arithmetic-mc, canary, bias, refusal, safety-probes. Comma-separated or repeated.
        out: output directory.
        data_dir: a directory holding the benchmarks' files in their published layouts (one
            sub-directory per benchmark, e.g. DIR/mmlu/data/test/*.csv, DIR/gsm8k/test.jsonl); see
            docs/evaluation.md for the layouts each benchmark accepts.
        data: NAME=PATH for one benchmark's file or directory (overrides --data-dir for it).
        shots: in-context examples per question (default: each benchmark's published number, e.g.
            MMLU 5, GSM8K 5, MBPP 3; 0 for YAML and built-in tasks).
        seed: seeds the choice of in-context examples and the sampling.
        chat: wrap prompts in the checkpoint's chat template (each example a user/assistant turn).
        cot: chain of thought: worked solutions in the examples where the task has a `rationale`, else
            "Let's think step by step."; the answer is read from "The answer is ...".
        self_consistency: sample this many answers per question at --temperature and score the
            majority (0: greedy; 1: a single sampled answer, the baseline a vote is compared with).
        samples: code benchmarks: completions sampled per problem (pass@k for k = 1, 10, 100 up to
            this; 1 is greedy pass@1).
        temperature: sampling temperature for self-consistency and for code samples.
        code_timeout: code benchmarks: seconds each generated program may run in the sandbox.
        system: a system message for chat prompts.
        limit: evaluate at most this many records per task.
        batch_size: sequences per forward pass.
        stride: perplexity: how far the sliding window moves (default: the model's context length).
        perturb: also score each question with character-level typos at this rate (robustness).
        max_new_tokens: override the tasks' generation length.
        device: torch device.
        progress: show a progress bar per task.
        overwrite: write into a non-empty OUT that holds no evaluation results (only llmkit's files are replaced).
        dtype: weight precision; auto keeps the checkpoint's own (a bf16 checkpoint runs in bf16).
        adapter: a fine-tuned adapter directory (any `llmkit finetune` method) evaluated on top of CHECKPOINT.
    """
    from llmkit.eval.evaluator import EvalOptions
    from llmkit.eval.prompting import PromptOptions
    from llmkit.eval.results import (
        markdown_table,
        resolve_tasks,
        run_tasks,
        write_results,
    )
    from llmkit.infer.llm import LLM

    from llmkit.fileio import check_output, mark_output

    from llmkit.errors import LlmkitError

    check_output(out, "eval", overwrite, [checkpoint, *([adapter] if adapter else []), *(t for t in tasks if t.endswith((".yaml", ".yml")))])
    mapping = {}
    for item in data or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise LlmkitError(f"--data {item!r}: expected NAME=PATH, e.g. --data gsm8k=gsm8k/test.jsonl")
        mapping[name.strip()] = path.strip()
    specs = resolve_tasks(tasks, data=mapping, data_dir=data_dir)  # a bad task name or file fails before the model loads
    llm = LLM.load(checkpoint, device=device, dtype=dtype, adapter=adapter)
    options = EvalOptions(PromptOptions(shots, seed, chat, cot, system), self_consistency, temperature, batch_size,
                          limit, stride, perturb, max_new_tokens, progress, samples, code_timeout)
    results = run_tasks(llm, specs, options)
    header = {"checkpoint": checkpoint, "adapter": adapter, "tasks": tasks, "data_dir": data_dir, "data": mapping,
              "options": {"shots": shots, "samples": samples, "seed": seed, "chat": chat, "cot": cot, "self_consistency": self_consistency,
        "temperature": temperature, "limit": limit, "stride": stride, "perturb": perturb}}
    write_results(out, header, results)
    mark_output(out, "eval", ["results.json", "results.md"])
    print(markdown_table(results))
    print(f"-> {out}/results.json, {out}/results.md")


def lm_eval(argv: list[str], prog: str = "llmkit lm-eval") -> None:
    """lm-evaluation-harness's command line with `--model llmkit` registered (all flags are lm-eval's)."""
    try:
        from llmkit.eval.lm_eval_adapter import cli
    except ModuleNotFoundError as missing:
        from llmkit.errors import LlmkitError

        raise LlmkitError(f"`{prog}` needs lm-evaluation-harness ({missing.name} is missing): "
                          "pip install 'llmkit[lm-eval]'") from None
    cli(argv, prog)
