"""rys: layer surgery and circuit search on GGUF language models."""

__version__ = "0.1.0"
