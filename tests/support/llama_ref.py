"""Logits from llama.cpp (through llama-cpp-python) for a list of token ids.

llama.cpp runs in a child process (rys.llamacpp.child), so a crash in one of
its kernels fails one test with the signal's name instead of killing pytest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rys.llamacpp import child as llama_child

TOKENS = [257, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84]  # BOS + "Hello, world!\nT"


def _logits_here(path: str, tokens: list[int], n_threads: int, kv_f32: bool) -> np.ndarray:
    import llama_cpp

    # An f32 KV cache keeps llama.cpp's rounding out of comparisons with float64 references.
    kv = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if kv_f32 else {}
    llm = llama_child.load_model(path, n_ctx=64, n_batch=64, n_threads=n_threads, n_threads_batch=n_threads,
                                 logits_all=True, **kv)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()


def llama_logits(path: Path, tokens: list[int] = TOKENS, n_threads: int = 1, kv_f32: bool = False) -> np.ndarray:
    """(len(tokens), n_vocab) float32 logits of every position."""
    return llama_child.call(_logits_here, str(path), [int(t) for t in tokens], n_threads, kv_f32,
                            what=f"on {Path(path).name}")
