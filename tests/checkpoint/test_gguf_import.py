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


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3", "tiny-olmo2", "tiny-gpt2"])
def test_each_family_converts_to_the_same_logits(name, tmp_path, tiny_tokenizer):
    from tests.checkpoint.gguf_files import write_family_gguf

    tok = tiny_tokenizer
    # Gemma's alternating layers use a window shorter than the test sequence; Gemma 3's local base differs
    cfg = named_config(name).replace(vocab_size=tok.vocab_size, eos_token_id=tok.eos_id, bos_token_id=tok.bos_id,
                                     pad_token_id=tok.pad_id, n_layer=6 if "gemma3" in name else 4,
                                     **({"sliding_window": 8} if "gemma" in name else {}),
                                     **({"layer_types": None} if "gemma3" in name else {}))
    if "gemma3" in name:
        from llmkit.model.named_configs import alternating

        cfg = cfg.replace(layer_types=alternating(6, 6))
    torch.manual_seed(0)
    model = build_model(cfg, "cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # norms away from 1, so a lost Gemma offset would show
    save_checkpoint(model, tmp_path / "src", tokenizer=tok)
    write_family_gguf(model, tmp_path / "src", tmp_path / "m.gguf")
    converted = load_checkpoint(tmp_path / "m.gguf", dtype=torch.float32).eval()
    tokens = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (converted(tokens) - model.eval()(tokens)).abs().max() < 1e-4


def test_sentencepiece_vocabulary_tokenizes_like_transformers(tmp_path):
    """A Llama-style SentencePiece vocabulary (scores, byte tokens, no merges in the file)."""
    import transformers
    from tokenizers import SentencePieceBPETokenizer

    from tests.conftest import SAMPLE_TEXT

    trained = SentencePieceBPETokenizer()
    trained.train_from_iterator([SAMPLE_TEXT], vocab_size=400, min_frequency=1, show_progress=False)
    pieces = sorted(trained.get_vocab().items(), key=lambda item: item[1])
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in pieces]
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    writer = gguf.GGUFWriter(str(tmp_path / "spm.gguf"), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 259 + [-float(i) for i in range(len(pieces))])
    writer.add_token_types(types)
    writer.add_bos_token_id(1), writer.add_eos_token_id(2), writer.add_unk_token_id(0)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    ours = Tokenizer.from_dir(tmp_path / "spm.gguf")
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file="spm.gguf")
    for text in (TEXT, "The quick brown fox jumps.", "  two leading spaces"):
        assert ours.encode(text) == theirs(text)["input_ids"], text
    assert ours.decode(ours.encode("The list")) == "The list"
