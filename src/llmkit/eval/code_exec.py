"""Code benchmarks (HumanEval, MBPP): sample completions, run each program in the sandbox, score
pass@k with the unbiased estimator. Greedy with one sample (pass@1, what lm-eval reports by
default); `--samples N --temperature T` samples N per problem and reports pass@k for k in 1, 10,
100 up to N."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from llmkit.decode.sampling_params import SamplingParams
from llmkit.eval.generation import generate_texts
from llmkit.eval.prompting import build_context
from llmkit.eval.sandbox import SandboxLimits, pass_at_k, run_program
from llmkit.eval.task_spec import TaskSpec

KS = (1, 10, 100)
SHOWN = 5


def _completions(llm, task: TaskSpec, contexts: list[str], options) -> list[list[str]]:
    n = max(1, options.samples)
    params = SamplingParams(temperature=options.temperature if n > 1 else 0.0, seed=options.prompt.seed, n=n,
                            stop=list(task.stop))
    return generate_texts(llm, task, contexts, params, options.max_new_tokens or task.max_new_tokens, options)


def evaluate_code(llm, task: TaskSpec, records: list[dict], options) -> dict:
    contexts = [build_context(task, r, i, options.prompt, llm.tokenizer) for i, r in enumerate(records)]
    completions = _completions(llm, task, contexts, options)
    programs = [[task.code(c, r) for c in group] for group, r in zip(completions, records)]
    limits = SandboxLimits(timeout=options.code_timeout)
    flat = [p for group in programs for p in group]
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(total=len(flat), desc=f"{task.name} programs", unit="program",
                                                          leave=False, disable=not options.progress) as bar:
        def run(source: str):  # each program is its own process
            outcome = run_program(source, limits)
            bar.update(1)
            return outcome

        outcomes = list(pool.map(run, flat))
    n = max(1, options.samples)
    per_problem = [outcomes[i * n: (i + 1) * n] for i in range(len(records))]
    metrics = {f"pass@{k}": sum(pass_at_k(n, sum(o.passed for o in group), k) for group in per_problem) / len(records)
               for k in KS if k <= n}
    statuses = [o.status for o in outcomes]
    metrics["timeout_rate"] = statuses.count("timeout") / len(statuses)
    samples = [{"prompt": contexts[i], "completion": completions[i][0], "status": per_problem[i][0].status,
                "stderr": per_problem[i][0].stderr[-500:]} for i in range(min(SHOWN, len(records)))]
    return {"metrics": metrics, "n": len(records), "samples": samples}
