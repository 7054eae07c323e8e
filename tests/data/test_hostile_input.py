"""`data prepare` survives any input text, and training refuses token shards that do not match
their index."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from llmkit.cli import main
from llmkit.data.loader import TokenDataset
from llmkit.errors import LlmkitError
from tests.data.planted import prose


def test_lone_surrogates_are_recorded_and_skipped(tmp_path):
    good = [json.dumps({"text": prose(i, words=60)}) for i in range(6)]
    lines = good[:2] + ['{"text": "broken \\ud800 half pair"}', '{"text": "ok", "meta": "\\udfff"}'] + good[2:]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["data", "prepare", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"),
                 "--steps", "normalize", "--no-progress"]) == 0
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [e["location"].rsplit(":", 1)[1] for e in errors] == ["3", "4"]
    assert all("lone surrogate" in e["message"] for e in errors)
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["docs_out"] == 6


def test_a_50_mb_single_line_document_is_rejected_in_bounded_memory(tmp_path):
    corpus = tmp_path / "huge.jsonl"
    with open(corpus, "w") as handle:
        handle.write(json.dumps({"text": prose(1, words=80)}) + "\n")
        handle.write('{"text": "' + "word " * 10_000_000 + '"}\n')  # 50 MB on one line
        handle.write(json.dumps({"text": prose(2, words=80)}) + "\n")
    probe = ("import resource, sys; from llmkit.cli import main; code = main(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, "data", "prepare", "--input", str(corpus), "--out",
                             str(tmp_path / "out"), "--steps", "normalize,exact_dedup", "--no-progress"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    error = json.loads((tmp_path / "out" / "errors.jsonl").read_text())
    assert error["location"].endswith(":2") and "limit" in error["message"]
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["docs_out"] == 2
    assert peak_kib < 2 * 2**20, f"peak RSS {peak_kib / 2**10:.0f} MiB"


@pytest.fixture
def shards(prepared_data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(prepared_data, copy)
    return copy, json.loads((copy / "index.json").read_text())


def test_a_truncated_shard_is_refused(shards):
    data, index = shards
    shard = data / index["train"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(LlmkitError, match="truncated"):
        TokenDataset(data, "train")


def test_a_missing_shard_is_refused(shards):
    data, index = shards
    (data / index["train"][0]["file"]).unlink()
    with pytest.raises(LlmkitError, match="missing"):
        TokenDataset(data, "train")


def test_token_ids_outside_the_vocabulary_are_refused(shards):
    data, index = shards
    shard = data / index["train"][0]["file"]
    tokens = np.fromfile(shard, dtype="<u2")
    tokens[5] = index["vocab_size"] + 3
    tokens.tofile(shard)
    with pytest.raises(LlmkitError, match="outside the vocabulary"):
        TokenDataset(data, "train")


def test_pretrain_reports_a_bad_shard_in_one_line(shards, tmp_path, capsys):
    data, index = shards
    index["train"][0]["file"] = "../../../etc/passwd"
    (data / "index.json").write_text(json.dumps(index))
    assert main(["pretrain", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "tiny-llama",
                 "--max-steps", "1", "--no-progress"]) == 2
    assert "outside the directory" in capsys.readouterr().err
