"""Checkpoint directories are untrusted: shard names stay inside, impossible configs are refused
before allocating, legacy pickles are refused, NaN weights are reported, and garbage JSON files
give one-line errors."""

import json
import shutil
import subprocess
import sys
import time

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.errors import LlmkitError
from llmkit.infer.llm import LLM


@pytest.fixture
def copy(tiny_checkpoint, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, path)
    return path


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config | changes))


def test_index_entries_must_stay_inside_the_checkpoint(copy):
    (copy / "model.safetensors").rename(copy / "model-00001-of-00001.safetensors")
    (copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../../outside.safetensors"}}))
    with pytest.raises(LlmkitError, match="outside the checkpoint"):
        load_checkpoint(copy)


@pytest.mark.parametrize("changes", [{"num_hidden_layers": 10**6}, {"hidden_size": 10**7, "intermediate_size": 10**7},
                                     {"vocab_size": 10**12}, {"num_attention_heads": 0}])
def test_absurd_configs_are_refused_before_allocating(copy, changes):
    _edit_config(copy, **changes)
    started = time.perf_counter()
    with pytest.raises(LlmkitError, match="impossible model|memory"):
        load_checkpoint(copy)
    assert time.perf_counter() - started < 2


def test_legacy_pickle_bin_is_refused_in_one_line(copy):
    state = load_checkpoint(copy).state_dict()
    (copy / "model.safetensors").unlink()
    torch.save({k.replace("blocks", "model.layers"): v for k, v in state.items()}, copy / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    with pytest.raises(LlmkitError, match="legacy"):
        load_checkpoint(copy)


def test_nan_weights_load_with_a_warning(copy, capsys):
    from safetensors.torch import load_file, save_file

    tensors = load_file(copy / "model.safetensors")
    name = next(iter(tensors))
    tensors[name][0] = float("nan")
    save_file(tensors, copy / "model.safetensors")
    load_checkpoint(copy)
    assert "NaN or inf" in capsys.readouterr().err


@pytest.mark.parametrize("file,content", [("tokenizer_config.json", "{not json"), ("tokenizer_config.json", "[1, 2]"),
                                          ("tokenizer_config.json", '{"chat_template": 5}'),
                                          ("generation_config.json", "\xff garbage"),
                                          ("generation_config.json", "3")])
def test_garbage_side_files_give_one_line_errors(copy, file, content, capsys):
    (copy / file).write_bytes(content.encode("latin-1"))
    assert main(["generate", "--checkpoint", str(copy), "--prompt", "a", "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert file in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_invalid_generation_config_values_are_ignored(copy):
    (copy / "generation_config.json").write_text('{"eos_token_id": ["x", -4, 2]}')
    assert LLM.load(copy).stop_ids >= {2}


def test_chat_stdin_that_is_not_utf8_gives_one_line(tiny_checkpoint):
    result = subprocess.run([sys.executable, "-m", "llmkit", "chat", "--checkpoint", str(tiny_checkpoint)],
                            input=b"hello \xff\xfe\n", capture_output=True, timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 2 and "not UTF-8" in err and "Traceback" not in err


def test_disk_full_is_one_line_and_leaves_nothing_half_written(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import errno

    import safetensors.torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "q"))

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    monkeypatch.setattr("llmkit.compress.checkpoint.save_file", full)
    assert main(["compress", "quantize", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no temp directory, no partial output


def test_written_files_share_one_permission_mode(tiny_checkpoint, tmp_path):
    from llmkit.checkpoint import save_checkpoint
    from llmkit.tokenizer import Tokenizer

    save_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "out", tokenizer=Tokenizer.from_dir(tiny_checkpoint))
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert len(set(modes.values())) == 1, modes
    assert (tmp_path / "out").stat().st_mode & 0o777 == (0o777 & ~_umask())


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current
