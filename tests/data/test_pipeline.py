"""`llmkit data prepare` end to end: outputs, determinism, resume, tasks, bad input, formats."""

import gzip
import json
import signal
import subprocess
import sys
import time

import pytest

from llmkit.cli import main
from tests.data.corpus_files import documents, tree_bytes, write_jsonl

FAST_STEPS = "normalize,language,gopher,exact_dedup,near_dedup,pii"
SMALL = ["--no-progress", "--unit-mb", "0.01"]  # many small units: exercises the merge order


def prepare(*args) -> int:
    return main(["data", "prepare", *args, *SMALL])


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "in.jsonl", documents(), bad_lines=True)


def test_curation_only_writes_docs_rejected_stats(corpus, tmp_path):
    out = tmp_path / "out"
    assert prepare("--input", str(corpus), "--out", str(out), "--steps", FAST_STEPS + ",toxicity") == 0
    stats = json.loads((out / "stats.json").read_text())
    assert [s["name"] for s in stats["steps"]] == FAST_STEPS.split(",") + ["toxicity"]
    for step in stats["steps"]:
        assert set(step) >= {"name", "docs_in", "docs_out", "chars_in", "chars_out", "removed"}
        assert step["docs_in"] - step["docs_out"] == sum(step["removed"].values())
    by_name = {s["name"]: s for s in stats["steps"]}
    assert by_name["exact_dedup"]["removed"] == {"duplicate": 1}
    assert by_name["near_dedup"]["removed"] == {"near_duplicate": 1}
    assert by_name["language"]["removed"] == {"language_de": 1}
    assert by_name["pii"]["counts"] == {"EMAIL": 1}
    assert stats["docs_in"] == 65 and stats["input_errors"] == 2
    kept = [json.loads(l) for f in sorted((out / "docs").iterdir()) for l in f.read_text().splitlines()]
    assert len(kept) == stats["docs_out"] and all(set(d) == {"id", "text", "url"} for d in kept)
    assert any("<EMAIL>" in d["text"] for d in kept if d["id"] == "pii")
    rejected = [json.loads(l) for f in (out / "rejected").iterdir() for l in f.read_text().splitlines()]
    assert {(r["step"], r["reason"], r["document"]["id"]) for r in rejected} >= {
        ("exact_dedup", "duplicate", "dup-exact"), ("near_dedup", "near_duplicate", "dup-near"),
        ("gopher", "gopher_word_count", "short"), ("language", "language_de", "german")}
    errors = [json.loads(l) for l in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["location"] for e in errors] == [f"{corpus}:5", f"{corpus}:10"]
    assert "malformed JSON" in errors[0]["message"] and "text" in errors[1]["message"]


def test_workers_do_not_change_the_output(corpus, tmp_path):
    prepare("--input", str(corpus), "--out", str(tmp_path / "w1"), "--vocab-size", "300", "--workers", "1")
    prepare("--input", str(corpus), "--out", str(tmp_path / "w2"), "--vocab-size", "300", "--workers", "2")
    one, two = tree_bytes(tmp_path / "w1"), tree_bytes(tmp_path / "w2")
    assert one == two and "train-00000.bin" in one and "index.json" in one


def test_killed_run_resumes_to_identical_output(tmp_path):
    corpus = write_jsonl(tmp_path / "in.jsonl", documents(400))
    args = ["--input", str(corpus), "--vocab-size", "300", "--steps", FAST_STEPS + ",tokenize", *SMALL]
    cmd = [sys.executable, "-m", "llmkit", "data", "prepare", *args]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    victim = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stage0 = tmp_path / "killed" / ".work" / "stage0"
    deadline = time.time() + 120
    while time.time() < deadline and not any(stage0.glob("*.done")):  # stage0 may not exist yet
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert any(stage0.glob("*.done")) and not (tmp_path / "killed" / "stats.json").exists()  # killed mid-run
    subprocess.run([*cmd, "--out", str(tmp_path / "killed")], check=True, capture_output=True)
    assert tree_bytes(tmp_path / "killed") == tree_bytes(tmp_path / "whole")


def test_tasks_then_merge_equal_a_single_run(corpus, tmp_path):
    common = ["--input", str(corpus), "--steps", FAST_STEPS]
    prepare(*common, "--out", str(tmp_path / "single"))
    for i in range(3):
        prepare(*common, "--out", str(tmp_path / "split"), "--task", f"{i}/3")
    assert not (tmp_path / "split" / "stats.json").exists()
    prepare(*common, "--out", str(tmp_path / "split"))
    assert tree_bytes(tmp_path / "split") == tree_bytes(tmp_path / "single")


def test_rerun_of_a_finished_run_is_a_no_op_and_other_settings_are_refused(corpus, tmp_path, capsys):
    common = ["--input", str(corpus), "--out", str(tmp_path / "o"), "--steps", "normalize"]
    prepare(*common)
    before = tree_bytes(tmp_path / "o")
    prepare(*common)
    assert "nothing to do" in capsys.readouterr().out and tree_bytes(tmp_path / "o") == before
    assert main(["data", "prepare", "--input", str(corpus), "--out", str(tmp_path / "o"), "--steps", "pii"]) == 2
    assert "other inputs or steps" in capsys.readouterr().err


def test_compressed_parquet_txt_inputs_directories_and_globs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    docs = documents(6)
    src = tmp_path / "src"
    src.mkdir()
    lines = "".join(json.dumps(d) + "\n" for d in docs[:2]).encode()
    (src / "a.jsonl.gz").write_bytes(gzip.compress(lines))
    (src / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(d) + "\n" for d in docs[2:4]).encode()))
    pq.write_table(pa.Table.from_pylist(docs[4:6]), src / "c.parquet")
    (src / "d.txt").write_text(docs[0]["text"] + " (as plain text)")
    out = tmp_path / "out"
    assert prepare("--input", str(src), "--out", str(out), "--steps", "normalize") == 0
    assert json.loads((out / "stats.json").read_text())["docs_out"] == 7
    assert prepare("--input", str(src / "*.parquet"), "--out", str(tmp_path / "glob"), "--steps", "normalize") == 0
    assert json.loads((tmp_path / "glob" / "stats.json").read_text())["docs_out"] == 2


def test_config_file_sets_step_options(corpus, tmp_path):
    (tmp_path / "data.yaml").write_text(
        "workers: 1\nsteps:\n  - name: normalize\n  - name: gopher\n    min_words: 1000\n  - name: tokenize\n    enabled: false\n")
    assert prepare("--input", str(corpus), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "data.yaml")) == 0
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["docs_out"] == 0 and [s["name"] for s in stats["steps"]] == ["normalize", "gopher"]


def test_a_flag_on_the_command_line_beats_the_config_file_even_at_its_default(corpus, tmp_path):
    (tmp_path / "data.yaml").write_text("rejected: false\nsteps:\n  - name: normalize\n  - name: gopher\n    min_words: 1000\n")
    args = ["--input", str(corpus), "--config", str(tmp_path / "data.yaml")]
    assert prepare(*args, "--out", str(tmp_path / "from_file")) == 0
    assert not (tmp_path / "from_file" / "rejected").exists()  # the file's setting applies
    assert prepare(*args, "--out", str(tmp_path / "flag"), "--rejected") == 0  # --rejected is the default value
    assert any((tmp_path / "flag" / "rejected").iterdir())


def test_bad_step_and_option_names_are_explained(corpus, tmp_path, capsys):
    assert prepare("--input", str(corpus), "--out", str(tmp_path / "o"), "--steps", "normalise") == 2
    assert "normalize" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("steps:\n  - name: gopher\n    min_wrds: 3\n")
    assert prepare("--input", str(corpus), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "bad.yaml")) == 2
    assert "min_words" in capsys.readouterr().err


def test_tokenize_packs_shards_that_decode_to_the_documents(corpus, tmp_path):
    from llmkit.data.loader import TokenDataset
    from llmkit.tokenizer import Tokenizer

    out = tmp_path / "o"
    assert prepare("--input", str(corpus), "--out", str(out), "--steps", "normalize,tokenize", "--vocab-size", "300") == 0
    index = json.loads((out / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["documents"]["train"] + index["documents"]["val"] == 65
    assert index["documents"]["val"] >= 1
    tokenizer = Tokenizer.from_dir(out / "tokenizer")
    train = TokenDataset(out)
    first = train.tokens(0, int(train.doc_starts[1]))
    docs = [d["text"] for d in documents()]
    assert tokenizer.decode(first.tolist()) in docs
    assert first[-1] == tokenizer.eos_id


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # not beside the test that starts a Ray cluster
def test_ray_executor_gives_the_same_output(corpus, tmp_path):
    pytest.importorskip("ray")
    common = ["--input", str(corpus), "--steps", FAST_STEPS]
    prepare(*common, "--out", str(tmp_path / "local"))
    prepare(*common, "--out", str(tmp_path / "ray"), "--executor", "ray")
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")


def test_memory_stays_bounded_by_the_unit_not_the_corpus(tmp_path):
    import tracemalloc

    from llmkit.data.pipeline import PrepareConfig, prepare as run_prepare

    doc = {"text": "The same sentence is repeated here to make a long enough line of text. " * 14}
    with open(tmp_path / "big.jsonl", "w") as handle:
        for i in range(10_000):  # about 10 MB
            handle.write(json.dumps({**doc, "id": i}) + "\n")
    tracemalloc.start()
    run_prepare(PrepareConfig(inputs=[str(tmp_path / "big.jsonl")], out=str(tmp_path / "o"),
                              steps=[{"name": "normalize"}, {"name": "exact_dedup"}], unit_mb=0.5, progress=False))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (tmp_path / "big.jsonl").stat().st_size > 9_000_000
    assert peak < 8_000_000, f"peak Python memory {peak / 1e6:.1f} MB for a 10 MB corpus"


def test_truncated_compressed_file_is_reported_not_fatal(tmp_path):
    docs = documents(20)
    blob = gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode())
    (tmp_path / "broken.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    write_jsonl(tmp_path / "fine.jsonl", docs[:3])
    out = tmp_path / "o"
    assert prepare("--input", str(tmp_path / "broken.jsonl.gz"), str(tmp_path / "fine.jsonl"),
                   "--out", str(out), "--steps", "normalize") == 0
    stats = json.loads((out / "stats.json").read_text())
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert stats["input_errors"] == 1 and "broken.jsonl.gz" in errors[0]["location"]
    assert "unreadable" in errors[0]["message"] and stats["docs_out"] >= 3
