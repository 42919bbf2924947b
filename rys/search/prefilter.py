"""A cheap screen before probing: how far a candidate's next-token
distributions move from the baseline's on a short text (KL divergence).

Computed in-process with llama-cpp-python on one short passage; a
candidate whose mean KL(baseline || candidate) per token exceeds the
threshold is marked "pruned" (reported with its KL, never hidden).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..llamacpp import child as llama_child
from ..core.errors import RysError

# Written for this project: plain prose with a little arithmetic and dialogue,
# so that a broken circuit shows up as a broad change of the distributions.
PASSAGE = (
    "The river town woke slowly. Mara counted the crates on the dock: twelve from the north barge, "
    "seven from the south, and three that nobody claimed. \"If each crate holds forty jars,\" she said "
    "to her brother, \"then we are storing more than eight hundred jars tonight.\" He laughed and pointed "
    "at the clouds gathering over the hills, because rain always arrived the day after a market, and the "
    "market had been yesterday."
)


def _logits_here(model_path: str, text: str, n_threads: int, max_tokens: int) -> np.ndarray:
    """In a child process: (positions, vocab) logits of every position of `text`."""
    llm = llama_child.load_model(model_path, n_ctx=max_tokens + 8, n_batch=max_tokens + 8, n_threads=n_threads,
                                 logits_all=True)
    try:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)[:max_tokens]
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float64)
    finally:
        llm.close()


def next_token_logprobs(model_path: Path, text: str = PASSAGE, n_threads: int | None = None,
                        max_tokens: int = 96, log: Path | None = None) -> np.ndarray:
    """(positions, vocab) log-probabilities of the next token at every position of `text`.

    llama.cpp runs in a child process (its log goes to `log`): a crash there
    is a RysError, not the end of the sweep."""
    n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
    logits = llama_child.call(_logits_here, str(model_path), text, n_threads, max_tokens,
                              what=f"on {Path(model_path).name} (KL prefilter)", log=log)
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def mean_kl(base: np.ndarray, cand: np.ndarray) -> float:
    """Mean over positions of KL(p_base || p_cand), in nats."""
    if base.shape != cand.shape:
        raise RysError(f"KL prefilter: distributions differ in shape {base.shape} vs {cand.shape}")
    p = np.exp(base)
    return float(np.mean(np.sum(p * (base - cand), axis=1)))
