"""Pure model code: config, components, the Transformer, and building it on the meta device."""

from llmkit.model.config import ModelConfig
from llmkit.model.init import build_model, count_parameters, materialise
from llmkit.model.named_configs import config_names, named_config

__all__ = ["ModelConfig", "build_model", "count_parameters", "materialise", "config_names", "named_config"]
