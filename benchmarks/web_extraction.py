"""HTML main-text extraction: resiliparse vs trafilatura on a labelled set of synthetic pages
(llmkit.data.synthetic_web: article + navigation, cookie banner, sidebar with teasers, comment form,
footer, scripts; several languages and encodings). Reports pages/s per core and word-level
precision/recall/F1 against the labels (means over pages, and the share of pages with F1 >= 0.95).
Writes JSON.

    .venv/bin/python benchmarks/web_extraction.py [--pages 400] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmkit.data.extraction_quality import precision_recall
from llmkit.data.steps.web import extract_resiliparse, extract_trafilatura
from llmkit.data.synthetic_web import make_page
from llmkit.data.warc import decode_html
from llmkit.fileio import write_json

EXTRACTORS = {"resiliparse": extract_resiliparse, "trafilatura": extract_trafilatura}


def measure(name: str, pages) -> dict:
    extract = EXTRACTORS[name]
    extract(pages[0][0])  # imports and warm-up outside the clock
    started = time.perf_counter()
    outputs = [extract(html) for html, _ in pages]
    seconds = time.perf_counter() - started
    scores = [precision_recall(out, label) for out, (_, label) in zip(outputs, pages)]
    f1 = [2 * p * r / max(p + r, 1e-9) for p, r in scores]
    n = len(pages)
    return {"extractor": name, "pages_per_s": n / seconds, "precision": sum(p for p, _ in scores) / n,
            "recall": sum(r for _, r in scores) / n, "f1": sum(f1) / n, "pages_f1_ge_0.95": sum(f >= 0.95 for f in f1) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    pages = []
    for i in range(args.pages):
        page = make_page(i, seed=7)
        pages.append((decode_html(page.html, page.charset_header), page.main_text))  # as the WARC reader does
    rows = [measure(name, pages) for name in EXTRACTORS]
    print(f"{'extractor':<13}{'pages/s':>9}{'precision':>11}{'recall':>8}{'F1':>7}{'F1>=.95':>9}")
    for r in rows:
        print(f"{r['extractor']:<13}{r['pages_per_s']:>9.0f}{r['precision']:>11.3f}{r['recall']:>8.3f}{r['f1']:>7.3f}"
              f"{r['pages_f1_ge_0.95']:>9.2f}")
    print(f"resiliparse / trafilatura speed: {rows[0]['pages_per_s'] / rows[1]['pages_per_s']:.1f}x")
    write_json(Path(args.out) / "web_extraction.json", {"pages": args.pages, "rows": rows})


if __name__ == "__main__":
    main()
