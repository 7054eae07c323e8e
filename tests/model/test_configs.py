import pytest

from llmkit.errors import LlmkitError
from llmkit.model import ModelConfig, config_names, count_parameters, named_config

# Published parameter counts (model cards / the papers); tied embeddings counted once.
PUBLISHED = {
    "gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200,
    "llama-2-7b": 6_738_415_616, "llama-2-13b": 13_015_864_320, "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248, "llama-3-70b": 70_553_706_496, "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824, "mistral-7b": 7_241_732_096, "mixtral-8x7b": 46_702_792_704,
    "qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304, "qwen2.5-7b": 7_615_616_512,
    "t5-base": 222_903_552, "llama-3.1-8b": 8_030_261_248, "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120, "smollm2-1.7b": 1_711_376_384, "qwen3-0.6b": 596_049_920,
    "qwen3-4b": 4_022_468_096, "qwen3-8b": 8_190_735_360, "gemma-2-2b": 2_614_341_888,
    "gemma-2-9b": 9_241_705_984, "gemma-3-1b": 999_885_952, "phi-3-mini": 3_821_079_552,
    "olmo-2-7b": 7_298_617_344,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published_figure(name):
    assert count_parameters(named_config(name)) == PUBLISHED[name]


def test_every_family_has_a_tiny_debug_config():
    for family in ("llama", "mistral", "qwen2", "mixtral", "gpt2", "t5", "glm", "qwen3", "gemma2", "gemma3", "phi3",
                   "olmo2"):
        count = count_parameters(named_config(f"tiny-{family}"))
        assert 500_000 < count < 10_000_000, (family, count)


def test_required_architectures_are_named():
    archs = {named_config(n).arch for n in config_names()}
    assert archs == {"decoder", "prefix_decoder", "encoder_decoder"}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(LlmkitError, match="llama-2-7b"):
        named_config("lama-2-7b")


def test_inconsistent_config_is_rejected_with_the_reason():
    with pytest.raises(LlmkitError, match="not a multiple of n_kv_head"):
        ModelConfig(n_head=8, n_kv_head=3)


def test_dict_round_trip():
    cfg = named_config("llama-3.2-1b")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
