"""Logits from llama.cpp (through llama-cpp-python) for a list of token ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOKENS = [257, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84]  # BOS + "Hello, world!\nT"


def llama_logits(path: Path, tokens: list[int] = TOKENS, n_threads: int = 1) -> np.ndarray:
    """(len(tokens), n_vocab) float32 logits of every position."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=n_threads,
                logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()
