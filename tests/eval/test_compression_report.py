"""`llmkit compress report` measures each method the same way and writes the table, JSON and plot."""

import json

from llmkit.cli import main


def test_report_writes_table_json_and_plot(trained_small, prepared_data, tmp_path):
    assert main(["compress", "report", "--checkpoint", str(trained_small), "--eval", str(prepared_data),
                 "--out", str(tmp_path), "--methods", "int8", "wanda-2:4", "lowrank", "layers", "--peak-memory"]) == 0
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["fp32", "int8", "wanda-2:4", "lowrank", "layers"]
    by = {r["method"]: r for r in rows}
    assert by["int8"]["size_vs_fp32"] < 0.6 and by["lowrank"]["size_vs_fp32"] < 1 and by["layers"]["size_vs_fp32"] < 0.9
    assert by["wanda-2:4"]["size_vs_fp32"] == 1  # zeros are stored densely
    assert abs(by["int8"]["perplexity_vs_fp32"] - 1) < 0.01
    assert by["int8"]["peak_vs_fp32"] < 1 < by["fp32"]["peak_mib"]  # a fresh process serving the saved files
    report = (tmp_path / "report.md").read_text()
    assert "| int8 |" in report and "## Greedy samples" in report
    assert all(isinstance(r["sample"], str) and r["sample"].strip() for r in rows)  # a continuation per method
    assert (tmp_path / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
