"""The lifecycle report of `llmkit demo`: report.md (images linked) and report.html (one file, images
embedded as data URIs, so it can be mailed or archived). Sections: the per-stage table (wall time,
peak memory, tokens/s, parameters, size on disk, quality - the served reply among them), every
model's evaluation, the loss curves and the compression trade-off, and the commands to redo each
stage on your data."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from llmkit.fileio import atomic_write_text

STAGE_COLUMNS = [("stage", "stage"), ("seconds", "wall time (s)"), ("peak_rss_mib", "peak RSS (MiB)"),
                 ("tokens_per_s", "tokens/s"), ("parameters", "parameters"), ("trainable", "trainable"),
                 ("size_mib", "size on disk (MiB)"), ("quality", "quality")]


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("parameters", "trainable") and isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if key in ("tokens_per_s", "peak_rss_mib") else f"{value:,.1f}"
    return str(value)


def _table_rows(stages: list[dict]) -> list[list[str]]:
    return [[_cell(key, row.get(key)) for key, _ in STAGE_COLUMNS] for row in stages]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child,td:last-child{text-align:left}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}
figure{display:inline-block;margin:0.5em;width:47%;vertical-align:top}pre{background:#f6f6f6;padding:1em;overflow-x:auto}"""


def write_report(out: Path, title: str, stages: list[dict], evaluation: tuple[list[str], list[list[str]]],
                 images: dict[str, Path], notes: list[str], commands: list[tuple[str, str]]) -> tuple[Path, Path]:
    """report.md and report.html under OUT; evaluation is (header, rows); `images` maps captions to
    PNGs (those missing are skipped)."""
    images = {caption: png for caption, png in images.items() if png.is_file()}
    stage_header = [label for _, label in STAGE_COLUMNS]
    eval_header, eval_rows = evaluation
    shell = "\n".join(f"# {what}\n{command}" for what, command in commands)

    md = [f"# {title}", "", *notes, "", "## Stages", "", markdown_table(stage_header, _table_rows(stages)),
          "## Evaluation of each stage's model (`llmkit evaluate`)", "", markdown_table(eval_header, eval_rows),
          "## Curves", ""]
    md += [f"![{caption}]({png.relative_to(out).as_posix()})" for caption, png in images.items()]
    md += ["", "## Reproduce on your data", "", "```bash", shell, "```", ""]
    md_path = out / "report.md"
    atomic_write_text(md_path, "\n".join(md))

    figures = "".join(f'<figure><img src="{_data_uri(png)}" alt="{html.escape(caption)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, png in images.items())
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{notes_html}"
            f"<h2>Stages</h2>{_html_table(stage_header, _table_rows(stages))}"
            f"<h2>Evaluation of each stage's model</h2>{_html_table(eval_header, eval_rows)}"
            f"<h2>Curves</h2>{figures}<h2>Reproduce on your data</h2><pre>{html.escape(shell)}</pre></body></html>")
    html_path = out / "report.html"
    atomic_write_text(html_path, page)
    return md_path, html_path
