"""Curating a generated web crawl: llmkit against datatrove on the same WARC files in the same run.

The crawl (llmkit.data.synthetic_web) holds pages with boilerplate, several languages and encodings,
and planted duplicates: 10% of pages repeat an earlier page's article exactly (new URL, new
boilerplate) and 10% repeat one with about 5% of its words changed. Two jobs, one worker each:

    extraction   WARC -> main text -> JSONL              llmkit html_extract (resiliparse)  |  datatrove Trafilatura
    pipeline     + URL filter, Gopher repetition and quality, C4, near-duplicate removal (MinHash), PII
                 llmkit: html_extract,url_filter,normalize,gopher,c4,toxicity,bias,exact_dedup,near_dedup,pii
                 datatrove: WarcReader, Trafilatura, URLFilter, GopherRepetitionFilter, GopherQualityFilter,
                 C4QualityFilter, MinhashDedup (signature, buckets, cluster, filter), PIIFormatter, JsonlWriter

Reports input documents per second per core (wall time of each whole job, process start included),
the ratio, and dedup recall (the share of planted duplicates removed). datatrove runs from its own
environment (`--datatrove-python`, e.g. a venv with `pip install 'datatrove[io,processing]' spacy
lxml_html_clean`); without one only llmkit's rows are printed. Writes JSON.

    .venv/bin/python benchmarks/web_pipeline.py --mb 20 --datatrove-python /tmp/dt/bin/python
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmkit.data.synthetic_web import make_page, warc_record, write_warc
from llmkit.fileio import write_json

DATATROVE_JOB = r'''
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import URLFilter, GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig
job, crawl, out = sys.argv[1:4]
run = lambda steps: LocalPipelineExecutor(pipeline=steps, tasks=1, workers=1, logging_dir=f"{out}/logs/{len(steps)}-{id(steps)}").run()
read = lambda: [WarcReader(crawl, glob_pattern="*.warc.gz"), Trafilatura(favour_precision=True, timeout=10)]
if job == "extraction":
    run(read() + [JsonlWriter(f"{out}/docs", compression=None)])
else:
    config = MinhashConfig()
    run(read() + [URLFilter(), GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(),
                  JsonlWriter(f"{out}/filtered", compression=None),
                  MinhashDedupSignature(output_folder=f"{out}/sigs", config=config)])
    LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{out}/sigs", output_folder=f"{out}/buckets",
                                                        config=config)], tasks=config.num_buckets, workers=1,
                          logging_dir=f"{out}/logs/buckets").run()
    run([MinhashDedupCluster(input_folder=f"{out}/buckets", output_folder=f"{out}/remove_ids", config=config)])
    from datatrove.pipeline.readers import JsonlReader
    run([JsonlReader(f"{out}/filtered"), MinhashDedupFilter(input_folder=f"{out}/remove_ids"), PIIFormatter(),
         JsonlWriter(f"{out}/docs", compression=None)])
'''
LLMKIT_STEPS = {"extraction": "html_extract",
                "pipeline": "html_extract,url_filter,normalize,gopher,c4,toxicity,bias,exact_dedup,near_dedup,pii"}


def make_crawl(root: Path, megabytes: float, files: int = 4, seed: int = 0) -> dict:
    """WARC.gz files of about `megabytes` of HTML, with planted duplicates; returns the labels."""
    rng, pages, size, duplicates = random.Random(seed), [], 0, {}
    while size < megabytes * 2**20:
        index = len(pages)
        page = make_page(index, seed)
        roll = rng.random()
        if index > 20 and roll < 0.2:
            original = pages[rng.randrange(index // 2)]
            copy = make_page(index + 10_000_000, seed)  # other boilerplate and URL, the original's article
            article = original.main_text.split("\n")
            if roll >= 0.1:  # near duplicate: about 2% of the words replaced
                words = " ".join(article[1:]).split()
                for k in rng.sample(range(len(words)), max(1, len(words) // 50)):
                    words[k] = rng.choice(["data", "model", "cluster", "queue", "disk"])
                article = article[:1] + [" ".join(words)]
            body = "".join(f"<p>{p}</p>" for p in article[1:])
            html = copy.html.decode(copy.charset_header or "utf-8", errors="replace")
            start = html.index("<h1>")
            end = html.rindex("</", 0, html.index("<aside"))  # the article container's closing tag
            html = html[:start] + f"<h1>{article[0]}</h1>{body}" + html[end:]
            copy.html, copy.charset_header, copy.robots = html.encode("utf-8"), "utf-8", ""
            copy.url = f"https://mirror{index}.example.net/p/{index}"
            duplicates[copy.url] = (original.url, "near" if roll >= 0.1 else "exact")
            page = copy
        pages.append(page)
        size += len(page.html)
    per_file = -(-len(pages) // files)
    for f in range(files):
        write_warc(root / f"crawl-{f:02d}.warc.gz", [warc_record(p) for p in pages[f * per_file:(f + 1) * per_file]])
    return {"pages": len(pages), "html_bytes": size, "duplicates": duplicates}


def _surviving_urls(docs_dir: Path) -> set[str]:
    urls = set()
    for file in docs_dir.rglob("*.jsonl"):
        for line in file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            urls.add(record.get("url") or record.get("metadata", {}).get("url", ""))
    return urls


def _recall(survivors: set[str], duplicates: dict[str, tuple[str, str]], kind: str | None = None) -> float:
    """Planted copies removed, among those (of `kind`: exact or near) whose original survived the
    other filters."""
    judged = [copy for copy, (original, k) in duplicates.items() if original in survivors and kind in (None, k)]
    return sum(copy not in survivors for copy in judged) / max(len(judged), 1)


def run_llmkit(job: str, crawl: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmkit", "data", "prepare", "--input", str(crawl), "--out", str(out),
                    "--steps", LLMKIT_STEPS[job], "--workers", "1", "--no-progress", "--no-rejected"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def run_datatrove(python: str, job: str, crawl: Path, out: Path) -> float:
    script = out.parent / "datatrove_job.py"
    script.write_text(DATATROVE_JOB)
    started = time.perf_counter()
    subprocess.run([python, str(script), job, str(crawl), str(out)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="HTML megabytes in the generated crawl")
    parser.add_argument("--datatrove-python", help="python of an environment with datatrove installed")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "crawl").mkdir()
        labels = make_crawl(root / "crawl", args.mb)
        warc_bytes = sum(f.stat().st_size for f in (root / "crawl").iterdir())
        print(f"crawl: {labels['pages']:,} pages, {labels['html_bytes'] / 2**20:.0f} MB of HTML "
              f"({warc_bytes / 2**20:.0f} MB of WARC.gz), {len(labels['duplicates']):,} planted duplicates")
        rows = []
        for job in ("extraction", "pipeline"):
            for tool in ("llmkit", "datatrove"):
                if tool == "datatrove" and not args.datatrove_python:
                    continue
                out = root / f"{tool}-{job}"
                seconds = run_llmkit(job, root / "crawl", out) if tool == "llmkit" else \
                    run_datatrove(args.datatrove_python, job, root / "crawl", out)
                survivors = _surviving_urls(out / "docs")
                row = {"tool": tool, "job": job, "seconds": seconds, "docs_per_s_per_core": labels["pages"] / seconds,
                       "documents_out": len(survivors)}
                if job == "pipeline":
                    row["dedup_recall"] = _recall(survivors, labels["duplicates"])
                    row["dedup_recall_exact"] = _recall(survivors, labels["duplicates"], "exact")
                    row["dedup_recall_near"] = _recall(survivors, labels["duplicates"], "near")
                rows.append(row)
                print(f"{tool:<10}{job:<11}{seconds:>8.1f} s {row['docs_per_s_per_core']:>8.0f} docs/s/core "
                      f"{len(survivors):>7,} out" + (f"  dedup recall {row['dedup_recall']:.3f} (exact {row['dedup_recall_exact']:.3f}, near "
                         f"{row['dedup_recall_near']:.3f})" if "dedup_recall" in row else ""))
        for job in ("extraction", "pipeline"):
            pair = {r["tool"]: r for r in rows if r["job"] == job}
            if len(pair) == 2:
                print(f"{job}: llmkit / datatrove = {pair['llmkit']['docs_per_s_per_core'] / pair['datatrove']['docs_per_s_per_core']:.1f}x")
    write_json(Path(args.out) / "web_pipeline.json", {"mb": args.mb, "pages": labels["pages"], "rows": rows})


if __name__ == "__main__":
    main()
