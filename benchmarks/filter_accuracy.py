"""Precision and recall of the curation steps that misfired on technical text, on the labelled set
of llmkit.data.filter_eval_set: PII per type (a planted item counts as found when it is replaced by
the right placeholder; a look-alike that is changed is a false positive), language identification
per subset (prose in 7 languages, English technical text, source code; right = the label, with a
score the language step accepts), and how many code-bearing
technical documents the Gopher and C4 rules keep with and without `keep_code`. Writes JSON.

    .venv/bin/python benchmarks/filter_accuracy.py [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmkit.data.filter_eval_set import keep_code_scores, language_scores, pii_scores
from llmkit.fileio import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    pii, language, code = pii_scores(), language_scores(), keep_code_scores()
    print(f"PII: precision {pii['precision']:.3f}, recall {pii['recall']:.3f} ({pii['positives']} PII items, "
          f"{pii['negatives']} look-alikes, {pii['false_positives']} false positives)")
    for kind, recall in sorted(pii["recall_per_type"].items()):
        print(f"  recall {kind:<12}{recall:.3f}")
    print("language accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in language.items() if k != "documents"))
    print("code-bearing technical docs kept: " + ", ".join(f"{k} {v:.2f}" for k, v in code.items() if k != "documents"))
    write_json(Path(args.out) / "filter_accuracy.json", {"pii": pii, "language": language, "keep_code": code})


if __name__ == "__main__":
    main()
