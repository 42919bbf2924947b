"""Helpers for the tests: tiny models written with the gguf writer, HF
reference models, llama.cpp reference logits, a fake OpenAI-compatible
server, synthetic result tables, the shared data sets, child processes."""
