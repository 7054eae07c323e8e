"""Training: the one loop, its tasks, schedules and optimiser setup."""

from llmkit.train.task import CausalLMTask, Task
from llmkit.train.trainer import TrainConfig, TrainResult, evaluate_loss, train

__all__ = ["CausalLMTask", "Task", "TrainConfig", "TrainResult", "evaluate_loss", "train"]
