"""Where training metrics go: OUT/metrics.jsonl (one object per step), the console progress bar
(loss, tokens/s, MFU, ETA), optional TensorBoard, and a loss-curve PNG at the end."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tqdm.auto import tqdm

from llmkit.errors import LlmkitError


class MetricsLog:
    def __init__(self, out: Path, enabled: bool, total_steps: int, start_step: int, progress: bool,
                 tensorboard: bool):
        self.path, self.enabled = out / "metrics.jsonl", enabled
        self.writer = self.bar = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)  # a resumed run rewrites the steps after its checkpoint
        self.file = open(self.path, "a", encoding="utf-8")
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not progress,
                        dynamic_ncols=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LlmkitError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        if self.path.is_file():
            kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= step]
            self.path.write_text("".join(k + "\n" for k in kept))

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, record["step"])
        shown = {"loss": f"{record['loss']:.3f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
        if record.get("mfu") is not None:
            shown["mfu"] = f"{record['mfu']:.1%}"
        if "val_loss" in record:
            shown["val"] = f"{record['val_loss']:.3f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(record["step"] - self.bar.n)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.file.close()
            if self.writer is not None:
                self.writer.close()


def plot_loss_curve(metrics_path: Path, png_path: Path) -> None:
    """Training loss per step (and validation loss where measured) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(l) for l in metrics_path.read_text().splitlines() if l]
    train = [(r["step"], r["loss"]) for r in records if math.isfinite(r.get("loss", math.nan))]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
