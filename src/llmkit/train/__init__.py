"""Training: the one loop (`trainer.Trainer`), its tasks/objectives, schedules, precision,
checkpoints, and `pretrain.run_pretrain`. Import the modules directly (this package imports
nothing, so `llmkit.dist` can use `train.config` without a cycle)."""
