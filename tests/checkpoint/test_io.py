import json

import pytest
import torch

from llmkit.checkpoint import load_checkpoint, load_config, save_checkpoint
from llmkit.errors import LlmkitError
from llmkit.model import build_model, named_config

TINY = ["tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-mixtral", "tiny-gpt2", "tiny-t5", "tiny-glm"]


def _random(name, **overrides):
    torch.manual_seed(0)
    return build_model(named_config(name).replace(**overrides), "cpu").eval()


def _logits(model, tokens):
    with torch.no_grad():
        return model(tokens, tokens) if model.cfg.arch == "encoder_decoder" else model(tokens)


@pytest.mark.parametrize("name", TINY)
def test_save_load_round_trip_is_exact(name, tmp_path):
    model = _random(name)
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    tokens = torch.randint(0, 4096, (2, 10))
    assert torch.equal(_logits(model, tokens), _logits(loaded, tokens))
    assert loaded.cfg.replace(name="") == model.cfg.replace(name="")
    assert not any(p.is_meta for p in loaded.parameters())


def test_families_without_hf_counterpart_use_llmkit_keys(tmp_path):
    save_checkpoint(_random("tiny-glm"), tmp_path / "glm")
    assert json.loads((tmp_path / "glm" / "config.json").read_text())["model_type"] == "llmkit"
    save_checkpoint(_random("tiny-llama", position="alibi"), tmp_path / "alibi")  # not expressible as llama
    assert json.loads((tmp_path / "alibi" / "config.json").read_text())["model_type"] == "llmkit"


def test_sharded_checkpoint_round_trip(tmp_path):
    model = _random("tiny-llama")
    save_checkpoint(model, tmp_path / "ckpt", max_shard_bytes=1_000_000)
    index = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1 and all((tmp_path / "ckpt" / s).is_file() for s in shards)
    tokens = torch.randint(0, 4096, (1, 6))
    assert torch.equal(_logits(model, tokens), _logits(load_checkpoint(tmp_path / "ckpt"), tokens))


def test_pytorch_bin_loads_without_unpickling_objects(tmp_path):
    model = _random("tiny-llama")
    save_checkpoint(model, tmp_path / "ckpt")
    from safetensors.torch import load_file

    state = load_file(tmp_path / "ckpt" / "model.safetensors")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    torch.save(state, tmp_path / "ckpt" / "pytorch_model.bin")
    tokens = torch.randint(0, 4096, (1, 6))
    assert torch.equal(_logits(model, tokens), _logits(load_checkpoint(tmp_path / "ckpt"), tokens))


def test_load_with_dtype(tmp_path):
    save_checkpoint(_random("tiny-llama"), tmp_path / "ckpt")
    assert next(load_checkpoint(tmp_path / "ckpt", dtype=torch.bfloat16).parameters()).dtype == torch.bfloat16


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    model = _random("tiny-llama")
    save_checkpoint(model, tmp_path / "ckpt")

    class BrokenTokenizer:
        def save(self, directory):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(_random("tiny-llama", init_std=0.5), tmp_path / "ckpt", tokenizer=BrokenTokenizer())
    tokens = torch.randint(0, 4096, (1, 6))
    assert torch.equal(_logits(model, tokens), _logits(load_checkpoint(tmp_path / "ckpt"), tokens))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary directory left behind


def test_missing_directory_and_config_are_named(tmp_path):
    with pytest.raises(LlmkitError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmkitError, match="config.json"):
        load_checkpoint(tmp_path / "empty")


def test_corrupt_weights_file_is_named(tmp_path):
    save_checkpoint(_random("tiny-llama"), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(LlmkitError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_shard_is_named(tmp_path):
    save_checkpoint(_random("tiny-llama"), tmp_path / "ckpt", max_shard_bytes=1_000_000)
    index = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    second = sorted(set(index["weight_map"].values()))[1]
    (tmp_path / "ckpt" / second).unlink()
    with pytest.raises(LlmkitError, match=second):
        load_checkpoint(tmp_path / "ckpt")


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path):
    save_checkpoint(_random("tiny-llama"), tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["intermediate_size"] = 100
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LlmkitError, match=r"mlp\.\w+_proj\.weight' has shape \(\d+, \d+\) .*implies \((100, 128|128, 100)\)"):
        load_checkpoint(tmp_path / "ckpt")


def test_unknown_model_type_is_reported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(LlmkitError, match="model_type='bert'"):
        load_config(tmp_path)
