"""GGUF layer surgery: SPEC strings, the rewritten file (`rys build`), its check in llama.cpp (`rys verify`)."""
