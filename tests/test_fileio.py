"""Writers never delete what they did not create: --out checks, --overwrite, input inside output."""

import json

import pytest

from llmkit.cli import main
from llmkit.errors import LlmkitError
from llmkit.fileio import MARKER, atomic_dir, check_output


def _user_files(directory):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "thesis.tex").write_text("years of work")
    (directory / "notes").mkdir(exist_ok=True)
    (directory / "notes" / "a.txt").write_text("keep me")


def _intact(directory):
    return (directory / "thesis.tex").read_text() == "years of work" and (directory / "notes" / "a.txt").is_file()


def test_atomic_dir_refuses_foreign_directory_and_keeps_it(tmp_path):
    _user_files(tmp_path / "out")
    with pytest.raises(LlmkitError, match="--overwrite"):
        with atomic_dir(tmp_path / "out", kind="model") as tmp:
            (tmp / "config.json").write_text("{}")
    assert _intact(tmp_path / "out") and not (tmp_path / "out" / "config.json").exists()


def test_overwrite_replaces_only_llmkit_files(tmp_path):
    out = tmp_path / "out"
    _user_files(out)
    (out / "config.json").write_text("old")
    with atomic_dir(out, kind="model", overwrite=True) as tmp:
        (tmp / "config.json").write_text("new")
        (tmp / "weights.bin").write_text("w")
    assert _intact(out) and (out / "config.json").read_text() == "new"
    with atomic_dir(out, kind="model", overwrite=True) as tmp:  # a second write drops its own stale file only
        (tmp / "config.json").write_text("newer")
    assert _intact(out) and not (out / "weights.bin").exists()
    assert json.loads((out / MARKER).read_text())["files"] == ["config.json"]


def test_same_kind_output_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out, kind="tokenizer") as tmp:
        (tmp / "tokenizer.json").write_text("1")
        (tmp / "extra.json").write_text("1")
    with atomic_dir(out, kind="tokenizer") as tmp:
        (tmp / "tokenizer.json").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "tokenizer.json"]
    with pytest.raises(LlmkitError, match="no llmkit model output"):
        check_output(out, "model")


def test_input_inside_output_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(LlmkitError, match="inside the output"):
        check_output(tmp_path / "out", "data", overwrite=True, inputs=[tmp_path / "out" / "in.jsonl"])


def test_data_prepare_keeps_user_files_and_its_input(tmp_path, capsys):
    out = tmp_path / "out"
    _user_files(out)
    corpus = out / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"document number {i} " * 20}) + "\n" for i in range(20)))
    args = ["data", "prepare", "--input", str(corpus), "--out", str(out), "--steps", "normalize", "--no-progress"]
    assert main(args) == 2 and "inside the output" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 2  # an input inside OUT is refused regardless
    elsewhere = tmp_path / "corpus.jsonl"
    corpus.rename(elsewhere)
    args[3] = str(elsewhere)
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert _intact(out) and not (out / "docs").exists()
    assert main([*args, "--overwrite"]) == 0
    assert _intact(out) and (out / "docs").is_dir() and (out / "stats.json").is_file()


def test_compress_quantize_refuses_foreign_out_then_keeps_user_files(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "q"
    _user_files(out)
    args = ["compress", "quantize", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--method", "int8"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and _intact(out) and (out / "compression.json").is_file()
    assert main(args) == 0 and _intact(out)  # now an llmkit model output: rewriting needs no flag
    into_itself = ["compress", "quantize", "--checkpoint", str(tiny_checkpoint), "--out", str(tiny_checkpoint.parent)]
    assert main(into_itself) == 2 and "inside the output" in capsys.readouterr().err


def test_export_gguf_refuses_to_replace_another_file(tiny_checkpoint, tmp_path, capsys):
    victim = tmp_path / "important.gguf"
    victim.write_text("not a gguf")
    assert main(["export", "gguf", "--checkpoint", str(tiny_checkpoint), "--out", str(victim)]) == 2
    assert victim.read_text() == "not a gguf" and "--overwrite" in capsys.readouterr().err


def test_training_run_refuses_foreign_out(prepared_data, tmp_path, capsys):
    out = tmp_path / "run"
    _user_files(out)
    assert main(["pretrain", "--data", str(prepared_data), "--out", str(out), "--model", "tiny-llama",
                 "--max-steps", "1", "--batch.seq_len", "16", "--batch.batch_size", "2", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and _intact(out)
