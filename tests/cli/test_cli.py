"""The CLI as users run it: subprocesses for what must hold at process level, main() otherwise."""

import json
import subprocess
import sys

import pytest

from llmkit.cli import main

LLMKIT = [sys.executable, "-m", "llmkit"]


def run(*args, **kw):
    return subprocess.run([*LLMKIT, *args], capture_output=True, text=True, timeout=300, **kw)


def test_top_level_help_imports_no_heavy_library():
    code = ("import sys; from llmkit.cli import main; main(['--help']); "
            "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'safetensors') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for verb in ("demo", "models", "tokenizer", "generate"):
        assert verb in result.stdout


def test_models_json_lists_exact_counts(capsys):
    assert main(["models", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["gpt2"] == 124_439_808 and counts["llama-3-8b"] == 8_030_261_248


def test_models_table(capsys):
    main(["models"])
    out = capsys.readouterr().out
    assert "mixtral-8x7b" in out and "46,702,792,704" in out


def test_unknown_verb_suggests(capsys):
    assert main(["generat"]) == 2
    assert "generate" in capsys.readouterr().err


def test_generate_prints_a_completion(tiny_checkpoint):
    result = run("generate", "--checkpoint", str(tiny_checkpoint), "--prompt", "Return the",
                 "--max-new-tokens", "5", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    result = run("generate", "--checkpoint", str(tmp_path / "nope"), "--prompt", "x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_bad_flag_value_is_rejected_without_traceback(tiny_checkpoint):
    result = run("generate", "--checkpoint", str(tiny_checkpoint), "--prompt", "x", "--top-p", "3")
    assert result.returncode == 2 and "top_p" in result.stderr and "Traceback" not in result.stderr


def test_tokenizer_train_writes_hf_files(tmp_path, capsys):
    from tests.conftest import SAMPLE_TEXT

    (tmp_path / "a.txt").write_text(SAMPLE_TEXT)
    assert main(["tokenizer", "train", "--input", str(tmp_path / "a.txt"), "--vocab-size", "320",
                 "--out", str(tmp_path / "tok")]) == 0
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {"tokenizer.json", "tokenizer_config.json", ".llmkit.json"}


@pytest.mark.parametrize("verb", [["generate"], ["demo"], ["tokenizer", "train"], ["models"]])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*verb, "--help"])
    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out


def test_missing_input_file_fails_before_any_work(tmp_path, capsys):
    assert main(["tokenizer", "train", "--input", str(tmp_path / "typo.txt"), "--out", str(tmp_path / "t")]) == 2
    assert "typo.txt does not exist" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_generate_decoding_paths_agree_on_greedy(tiny_checkpoint, capsys):
    base = ["generate", "--checkpoint", str(tiny_checkpoint), "--prompt", "Return the", "--max-new-tokens", "8"]
    outputs = {}
    for name, extra in {"plain": [], "offload": ["--offload"], "draft": ["--draft", str(tiny_checkpoint)],
                        "one beam": ["--num-beams", "1"], "beams": ["--num-beams", "3"]}.items():
        assert main([*base, *extra]) == 0
        outputs[name] = capsys.readouterr().out
    assert outputs["offload"] == outputs["plain"] == outputs["draft"] == outputs["one beam"]
    assert outputs["beams"].strip()


def test_every_verb_reads_a_config_file_and_flags_beat_it(tmp_path, capsys):
    config = tmp_path / "models.yaml"
    config.write_text("json: true\n")
    assert main(["models", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["gpt2"] == 124_439_808  # the file's setting
    assert main(["models", f"--config={config}", "--no-json"]) == 0  # a flag at its default still wins
    table = capsys.readouterr().out
    assert "mixtral-8x7b" in table and not table.startswith("{")


def test_function_verb_config_file_fills_required_flags(tiny_checkpoint, tmp_path, capsys):
    config = tmp_path / "generate.yaml"
    config.write_text(f"checkpoint: {tiny_checkpoint}\nprompt: Return the\nmax-new-tokens: 2\n")
    assert main(["generate", "--config", str(config)]) == 0
    two = capsys.readouterr().out
    assert main(["generate", "--config", str(config), "--max-new-tokens", "6"]) == 0
    six = capsys.readouterr().out
    assert two.strip() and len(six) > len(two)


def test_unknown_setting_in_a_verb_config_file_is_named(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("max_tokens: 5\n")
    assert main(["generate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'max_tokens'" in err and "max_new_tokens" in err


@pytest.mark.parametrize(("verb", "foreign"), [
    (["finetune"], ["--model", "--qat", "--parallel.tp", "--objective"]),
    (["align"], ["--model", "--qat", "--parallel.tp", "--objective"]),
    (["reward", "train"], ["--model", "--qat", "--parallel.tp", "--objective"]),
    (["compress", "distill"], ["--qat", "--objective"]),
])
def test_a_verb_offers_only_the_flags_it_uses(verb, foreign, capsys):
    with pytest.raises(SystemExit):
        main([*verb, "--help"])
    flags = {word.strip("[],|") for word in capsys.readouterr().out.split()}
    assert not flags & set(foreign), flags & set(foreign)
