"""Quantized number formats shared by the layers that use them: integer grids (quantization-aware
training, int8/int4 compression) and NF4 (QLoRA fine-tuning, `compress quantize --method nf4`).
Formats only; which modules get quantized is decided by the transforms in finetune and compress."""
