"""GGUF export reads back with the `gguf` reader: the right names, types and shapes, values within
each type's rounding, the rotary permutation llama.cpp expects, and the vocabulary."""

import numpy as np
import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.checkpoint.gguf_export import rotary_interleave
from llmkit.cli import main

gguf = pytest.importorskip("gguf")


@pytest.mark.parametrize("kind,qtype,tolerance", [("f16", "F16", 1e-3), ("q8_0", "Q8_0", 2e-2), ("q4_0", "Q4_0", 0.3)])
def test_gguf_reads_back(trained_small, tmp_path, kind, qtype, tolerance):
    out = tmp_path / f"model-{kind}.gguf"
    assert main(["export", "gguf", "--checkpoint", str(trained_small), "--out", str(out), "--type", kind]) == 0
    reader = gguf.GGUFReader(str(out))
    tensors = {t.name: t for t in reader.tensors}
    model = load_checkpoint(trained_small)
    cfg = model.cfg
    assert len([n for n in tensors if n.startswith("blk.")]) == 9 * cfg.n_layer
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    down = tensors["blk.1.ffn_down.weight"]
    assert down.tensor_type.name == qtype
    assert list(down.shape) == [cfg.d_ff, cfg.d_model]  # GGUF lists dimensions innermost first
    values = gguf.quants.dequantize(down.data, down.tensor_type).reshape(cfg.d_model, cfg.d_ff)
    original = model.layers[1].mlp.down_proj.weight.detach().numpy()
    assert np.abs(values - original).max() <= tolerance * np.abs(original).max()
    q = tensors["blk.0.attn_q.weight"]
    q_values = torch.from_numpy(gguf.quants.dequantize(q.data, q.tensor_type).reshape(q.shape[::-1].tolist()).copy())
    expected = rotary_interleave(model.layers[0].attn.q_proj.weight.detach(), cfg.n_head)
    assert torch.allclose(q_values, expected, atol=tolerance * expected.abs().max().item())
    field = reader.fields["llama.attention.head_count_kv"]
    assert int(field.parts[field.data[0]][0]) == cfg.n_kv_head
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == cfg.vocab_size
    bytes_per_parameter = out.stat().st_size / sum(p.numel() for p in model.parameters())
    assert bytes_per_parameter < {"f16": 2.2, "q8_0": 1.2, "q4_0": 0.7}[kind]


def test_rotary_interleave_pairs_each_half_with_its_partner():
    rows = torch.arange(8.0)[:, None]  # one head of dim 8: rows 0-3 first halves, 4-7 second halves
    assert rotary_interleave(rows, 1).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_chat_template_pre_tokenizer_and_bos_travel(tiny_checkpoint, tmp_path):
    """The template is found in chat_template.jinja when tokenizer_config.json has none."""
    import json
    import shutil

    source = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, source)
    config = json.loads((source / "tokenizer_config.json").read_text())
    template = config.pop("chat_template")
    config["add_bos_token"] = True
    (source / "tokenizer_config.json").write_text(json.dumps(config))
    (source / "chat_template.jinja").write_text(template)
    out = tmp_path / "m.gguf"
    assert main(["export", "gguf", "--checkpoint", str(source), "--out", str(out)]) == 0
    reader = gguf.GGUFReader(str(out))
    field = reader.fields["tokenizer.chat_template"]
    assert bytes(field.parts[field.data[0]]).decode() == template
    bos = reader.fields["tokenizer.ggml.add_bos_token"]
    assert bool(bos.parts[bos.data[0]][0]) is True
    assert "tokenizer.ggml.pre" in reader.fields
