"""GGUF in: files written by `llmkit export gguf` (and quantized with the gguf package) convert back
to the model the gguf package dequantizes; transformers reads the same file to the same logits and
the same token ids; every --checkpoint takes a .gguf file directly."""

import numpy as np
import pytest
import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.cli import main
from llmkit.model import build_model, named_config
from llmkit.tokenizer import Tokenizer

gguf = pytest.importorskip("gguf")
TEXT = "Hello naïve café, 東京 и Москва 🙂🚀 def f(x):\n\treturn x**2  # done <|im_end|>"


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2"])
def source(request, tmp_path_factory, tiny_tokenizer):
    """A random model (weights of std 0.2, so logits are far apart) with the trained BPE tokenizer."""
    tok = tiny_tokenizer
    cfg = named_config(request.param).replace(vocab_size=tok.vocab_size, eos_token_id=tok.eos_id,
                                              bos_token_id=tok.bos_id, pad_token_id=tok.pad_id)
    torch.manual_seed(0)
    model = build_model(cfg, "cpu")
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("gguf") / request.param
    save_checkpoint(model, path, tokenizer=tok)
    return path


def _rounded(model, kind):
    """The model with every matrix passed through the GGUF type's quantize + dequantize (the reference)."""
    qtype = {"f16": None, "q8_0": gguf.GGMLQuantizationType.Q8_0}[kind]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim < 2:
                continue
            array = p.detach().numpy()
            if qtype is None or array.shape[-1] % 32:
                p.copy_(torch.from_numpy(array.astype(np.float16).astype(np.float32)))
            else:
                p.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(array, qtype), qtype)))
    return model


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_converted_model_equals_the_dequantized_file(source, tmp_path, kind):
    file = tmp_path / "m.gguf"
    assert main(["export", "gguf", "--checkpoint", str(source), "--out", str(file), "--type", kind]) == 0
    assert main(["convert", "--input", str(file), "--out", str(tmp_path / "hf"), "--dtype", "fp32"]) == 0
    reference = _rounded(load_checkpoint(source), kind).eval()
    tokens = torch.randint(0, reference.cfg.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    for converted in (load_checkpoint(tmp_path / "hf"), load_checkpoint(file, dtype=torch.float32)):
        with torch.no_grad():
            assert (converted.eval()(tokens) - reference(tokens)).abs().max() < 1e-4


def test_transformers_reads_the_same_file_to_the_same_logits_and_ids(source, tmp_path):
    import transformers

    file = tmp_path / "m.gguf"
    assert main(["export", "gguf", "--checkpoint", str(source), "--out", str(file), "--type", "f16"]) == 0
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=file.name).eval()
    ours = load_checkpoint(file, dtype=torch.float32).eval()
    tokens = torch.randint(0, ours.cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (theirs(tokens).logits - ours(tokens)).abs().max() < 1e-4
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=file.name)
    assert Tokenizer.from_dir(file).encode(TEXT) == their_tokenizer(TEXT)["input_ids"]
    assert Tokenizer.from_dir(file).encode(TEXT) == Tokenizer.from_dir(source).encode(TEXT)


def test_every_verb_takes_a_gguf_file(source, tmp_path, capsys):
    file = tmp_path / "m.gguf"
    assert main(["export", "gguf", "--checkpoint", str(source), "--out", str(file)]) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(file), "--prompt", "The", "--max-new-tokens", "4"]) == 0
    assert main(["generate", "--checkpoint", str(file), "--chat", "--prompt", "hi", "--max-new-tokens", "4",
                 "--temperature", "0"]) == 0
    assert main(["compress", "quantize", "--checkpoint", str(file), "--out", str(tmp_path / "q")]) == 0
    assert main(["evaluate", "--checkpoint", str(file), "--tasks", "copy", "--limit", "2",
                 "--out", str(tmp_path / "eval"), "--no-progress"]) == 0


def test_unknown_architecture_is_named(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "x.gguf"), "mamba")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    code = main(["convert", "--input", str(tmp_path / "x.gguf"), "--out", str(tmp_path / "o")])
    assert code == 2
