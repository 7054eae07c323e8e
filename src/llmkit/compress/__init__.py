"""Compression: transforms from outside the model that make it smaller or faster - quantization
(int8, int4, GPTQ, AWQ), pruning (unstructured, N:M, structured), low-rank factorisation
and knowledge distillation. Each method has two phases: compute the compressed
state offline (`quantize_model`), and convert modules for runtime (`QuantLinear`), which is also
how a saved compressed checkpoint is rebuilt (`load_compressed`)."""
