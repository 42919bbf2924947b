"""The torch path on HF checkpoints: HF <-> GGUF, pruning, conversion, quantization, perplexity."""
