from llmkit.model import ModelConfig


def test_replace_rederives_a_derived_head_dim_but_keeps_an_explicit_one():
    base = ModelConfig(d_model=128, n_head=4)
    assert base.replace(d_model=512, n_head=8).head_dim == 64
    explicit = ModelConfig(d_model=128, n_head=4, head_dim=64)
    assert explicit.replace(d_model=256).head_dim == 64
