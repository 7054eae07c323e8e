import copy

import torch

from llmkit.compress.calibration import (
    block_groups,
    collect_input_stats,
    compress_block_by_block,
    linear_targets,
)
from llmkit.model import build_model, named_config


def test_block_groups_keep_order_and_split_at_block_boundaries():
    names = ["layers.0.attn.q_proj", "layers.0.mlp.down_proj", "layers.1.attn.q_proj", "layers.10.attn.q_proj",
             "lm_head"]
    assert block_groups(names) == [names[:2], [names[2]], [names[3]], ["lm_head"]]


def test_each_block_is_calibrated_on_the_outputs_of_the_already_compressed_blocks():
    """GPTQ/SparseGPT order: zeroing block 0's Linears must change the inputs block 1 is fitted to."""
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(n_layer=2), "cpu").eval()
    batches = [torch.randint(0, model.cfg.vocab_size, (2, 16)) for _ in range(2)]
    names = linear_targets(model)
    seen = {}

    def zero(name, stats):
        seen[name] = stats.hessian.clone()
        model.get_submodule(name).weight.data.zero_()

    reference = copy.deepcopy(model)
    full_precision = collect_input_stats(reference, batches, ["layers.1.attn.q_proj"])["layers.1.attn.q_proj"].hessian
    compress_block_by_block(model, batches, names, zero)
    first = [n for n in names if n.startswith("layers.0.")]
    for name in first:
        reference.get_submodule(name).weight.data.zero_()
    expected = collect_input_stats(reference, batches, ["layers.1.attn.q_proj"])["layers.1.attn.q_proj"].hessian
    assert torch.allclose(seen["layers.1.attn.q_proj"], expected)
    assert not torch.allclose(seen["layers.1.attn.q_proj"], full_precision)  # a one-pass calibration fails here
    unzeroed = collect_input_stats(copy.deepcopy(reference).requires_grad_(False), batches, first[:1])
    assert torch.allclose(seen[first[0]], unzeroed[first[0]].hessian)  # block 0 saw the untouched embeddings
