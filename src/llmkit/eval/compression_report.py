"""The compression trade-off: each method applied to one checkpoint and measured the same way -
size on disk, weight memory (and optionally peak memory when served), batch-1 decode tokens/s and
validation perplexity, each against the uncompressed model - as report.json, report.md and
tradeoff.png (size vs perplexity). Beside the numbers, each model's greedy continuation of the
same validation text: perplexity alone hides a model that loops or repeats.

Methods are named `int8`, `int4`, `gptq`, `awq`, `nf4`, `dynamic-int8` (quantization), `magnitude`, `wanda`, `sparsegpt`
(50% unstructured), `wanda-2:4`, `sparsegpt-2:4`, `lowrank` (rank ratio 0.5, whitened), `heads`,
`channels`, `layers` (25% removed). Pruned models keep their dense storage, so their size does
not shrink (sparse kernels are what would turn zeros into speed).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.compress.calibration_data import calibration_windows
from llmkit.compress.checkpoint import load_compressed, save_compressed
from llmkit.compress.lowrank import lowrank_model
from llmkit.compress.prune import prune_model
from llmkit.compress.quantize import quantize_model
from llmkit.compress.structured import prune_structure
from llmkit.data.loader import TokenDataset
from llmkit.errors import LlmkitError
from llmkit.eval.decode_memory import peak_decode_memory
from llmkit.fileio import atomic_write_text, write_json
from llmkit.decode import generate_ids
from llmkit.tokenizer import Tokenizer

ALL_METHODS = ("int8", "int4", "gptq", "awq", "nf4", "dynamic-int8", "magnitude", "wanda", "sparsegpt", "wanda-2:4", "sparsegpt-2:4",
               "lowrank", "heads", "channels", "layers")


@torch.no_grad()
def perplexity(model, data_dir: str | Path, seq_len: int = 256, windows: int = 32) -> float:
    """exp(mean token loss) over consecutive windows of the validation split."""
    data = TokenDataset(data_dir, "val")
    n = min(windows, (len(data) - 1) // (seq_len + 1))
    if n == 0:
        raise LlmkitError(f"{data_dir} has too few validation tokens for windows of {seq_len}")
    tokens = torch.stack([torch.from_numpy(data.tokens(i * (seq_len + 1), seq_len + 1)) for i in range(n)])
    losses = [torch.nn.functional.cross_entropy(model(t[None, :-1])[0].float(), t[1:]).item() for t in tokens]
    return math.exp(sum(losses) / len(losses))


def decode_tokens_per_s(model, new_tokens: int = 64, prompt_len: int = 16) -> float:
    """Decode steps only: the time for new_tokens minus the time for 4 leaves the prefill out."""
    prompt = [list(range(1, prompt_len + 1))]

    def seconds(n: int) -> float:
        start = time.perf_counter()
        generate_ids(model, prompt, n)
        return time.perf_counter() - start

    seconds(4)  # warm-up
    return (new_tokens - 4) / max(seconds(new_tokens) - seconds(4), 1e-9)


SAMPLE_PROMPT_TOKENS, SAMPLE_NEW_TOKENS = 24, 40


def sample_text(model, data_dir, tokenizer) -> str:
    """The greedy continuation of the first validation tokens (the same prompt for every method)."""
    prompt = TokenDataset(data_dir, "val").tokens(0, SAMPLE_PROMPT_TOKENS).tolist()
    return tokenizer.decode(generate_ids(model, [prompt], SAMPLE_NEW_TOKENS)[0])


def samples_markdown(rows: list[dict], prompt: str) -> str:
    lines = ["", "## Greedy samples", "", f"Prompt: `{_one_line(prompt)}`", "", "| method | continuation |",
             "| --- | --- |"]
    lines += [f"| {r['method']} | {_one_line(r['sample'])} |" for r in rows if "sample" in r]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|").strip()


def _compress(model, method: str, calib: list[torch.Tensor]) -> None:
    if method in ("int8", "int4", "gptq", "awq", "nf4", "dynamic-int8"):
        quantize_model(model, method, None, calib)
    elif method in ("magnitude", "wanda", "sparsegpt"):
        prune_model(model, method, 0.5, None, calib)
    elif method.endswith("-2:4"):
        prune_model(model, method.removesuffix("-2:4"), 0.5, "2:4", calib)
    elif method == "lowrank":
        lowrank_model(model, 0.5, True, calib)
    elif method in ("heads", "channels", "layers"):
        prune_structure(model, method, 0.75, calib)
    else:
        raise LlmkitError(f"unknown method {method!r}; choose from {', '.join(ALL_METHODS)}")


def _measure(model, method: str, data_dir, tokenizer, peak_memory: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        compressed = any(hasattr(m, "rank") or hasattr(m, "qweight") or hasattr(m, "packed") for m in model.modules())
        (save_compressed(model, tmp, method, tokenizer) if compressed else save_checkpoint(model, tmp, tokenizer))
        size = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))
        reloaded = load_compressed(tmp) if compressed else load_checkpoint(tmp).eval()  # measure what was saved
        peak = peak_decode_memory(tmp) if peak_memory else None
    weights = sum(t.numel() * t.element_size() for t in list(reloaded.parameters()) + list(reloaded.buffers()))
    row = {"method": method, "size_mib": size / 2**20, "weights_mib": weights / 2**20,
           "perplexity": perplexity(reloaded, data_dir), "decode_tokens_per_s": decode_tokens_per_s(reloaded),
           "sample": sample_text(reloaded, data_dir, tokenizer)}
    return row | ({"peak_mib": peak / 2**20} if peak is not None else {})


def compression_report(checkpoint: str | Path, data_dir: str | Path, methods: list[str], out: str | Path,
                       progress=print, peak_memory: bool = False) -> list[dict]:
    """peak_memory: also measure each saved checkpoint's peak resident memory when served (a
    fresh process loads it and decodes; a few seconds per method)."""
    tokenizer = Tokenizer.from_dir(checkpoint)
    calib = list(calibration_windows(data_dir, tokenizer, 32, 256).split(8))
    rows = [_measure(load_checkpoint(checkpoint).eval(), "fp32", data_dir, tokenizer, peak_memory)]
    for method in methods:
        model = load_checkpoint(checkpoint).eval()
        started = time.perf_counter()
        _compress(model, method, calib)
        rows.append(_measure(model, method, data_dir, tokenizer, peak_memory) | {"compress_seconds": time.perf_counter() - started})
        progress(f"[compress] {method}: perplexity {rows[-1]['perplexity']:.3f} (fp32 {rows[0]['perplexity']:.3f}), "
                 f"{rows[-1]['size_mib']:.1f} MiB")
    base = rows[0]
    for row in rows:
        row |= {"size_vs_fp32": row["size_mib"] / base["size_mib"],
                "perplexity_vs_fp32": row["perplexity"] / base["perplexity"],
                "decode_vs_fp32": row["decode_tokens_per_s"] / base["decode_tokens_per_s"]}
        if "peak_mib" in row:
            row["peak_vs_fp32"] = row["peak_mib"] / base["peak_mib"]
    out = Path(out)
    write_json(out / "report.json", {"checkpoint": str(checkpoint), "data": str(data_dir), "rows": rows})
    prompt = tokenizer.decode(TokenDataset(data_dir, "val").tokens(0, SAMPLE_PROMPT_TOKENS).tolist())
    atomic_write_text(out / "report.md", markdown_table(rows) + samples_markdown(rows, prompt))
    plot_tradeoff(rows, out / "tradeoff.png")
    return rows


def markdown_table(rows: list[dict]) -> str:
    peak = all("peak_mib" in r for r in rows)
    lines = ["| method | size MiB | vs fp32 | weights MiB | " + ("peak MiB | vs fp32 | " if peak else "")
             + "perplexity | vs fp32 | decode tok/s | vs fp32 |",
             "| --- | ---: | ---: | ---: | " + ("---: | ---: | " if peak else "") + "---: | ---: | ---: | ---: |"]
    for r in rows:
        memory = f"{r['peak_mib']:.0f} | {r['peak_vs_fp32']:.0%} | " if peak else ""
        lines.append(f"| {r['method']} | {r['size_mib']:.1f} | {r['size_vs_fp32']:.0%} | {r['weights_mib']:.1f} | {memory}"
                     f"{r['perplexity']:.3f} | {r['perplexity_vs_fp32'] - 1:+.2%} | {r['decode_tokens_per_s']:.0f} | "
                     f"{r['decode_vs_fp32']:.2f}x |")
    return "\n".join(lines) + "\n"


def plot_tradeoff(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for r in rows:
        ax.scatter(r["size_mib"], r["perplexity"], s=30)
        ax.annotate(r["method"], (r["size_mib"], r["perplexity"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("size on disk (MiB)")
    ax.set_ylabel("validation perplexity")
    ax.set_title("compression trade-off")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
