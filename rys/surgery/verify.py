"""Load a GGUF with llama.cpp (llama-cpp-python), decode a few tokens, and
compare the layer map llama.cpp used with the one rys expects."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..llamacpp import child as llama_child
from ..core.errors import RysError
from ..core.model import load

_SWA_LINE = re.compile(r"load_tensors: layer\s+(\d+) assigned to device \S+, is_swa = (\d)")
_KV_LINE = re.compile(r"llama_kv_cache: layer\s+(\d+): (dev = |filtered)")


def llama_layer_map(lines: list[str], n_layer_all: int) -> dict[str, list[bool | None]]:
    """Per-layer flags read off llama.cpp's load log: `swa` and `has_kv`."""
    swa: list[bool | None] = [None] * n_layer_all
    kv: list[bool | None] = [None] * n_layer_all
    for ln in lines:
        m = _SWA_LINE.search(ln)
        if m and int(m.group(1)) < n_layer_all:
            swa[int(m.group(1))] = m.group(2) == "1"
        m = _KV_LINE.search(ln)
        if m and int(m.group(1)) < n_layer_all and kv[int(m.group(1))] is None:
            kv[int(m.group(1))] = m.group(2).startswith("dev")
    return {"swa": swa, "has_kv": kv}


def _llama_kinds(model, flags: dict[str, list]) -> list[str]:
    """Translate llama.cpp's flags into rys's kind names, rule by rule."""
    parts = []
    for info in model.kind_infos:
        kinds = info.rule.kinds if info.rule else None
        if kinds == ("swa", "global"):
            parts.append(["?" if f is None else ("swa" if f else "global") for f in flags["swa"]])
        elif kinds == ("deltanet", "attention"):
            parts.append(["?" if f is None else ("attention" if f else "deltanet") for f in flags["has_kv"]])
        else:  # not visible in the log: take rys's word for it
            parts.append(list(info.kinds))
    if not parts:
        return ["block"] * model.n_layer_all
    return ["+".join(k) for k in zip(*parts)]


def _decode(path: str, prompt: str, n_tokens: int, n_threads: int) -> dict:
    """In a child process: load, greedy-decode `n_tokens`, check the logits; llama.cpp's log lines."""
    import llama_cpp

    name = Path(path).name
    llm = llama_child.load_model(path, n_ctx=256, n_threads=n_threads, n_batch=64, logits_all=False)
    try:
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
        decoded: list[int] = []
        for _ in range(n_tokens):
            llm.eval(tokens if not decoded else [decoded[-1]])
            # logits of the last position; llama-cpp-python keeps .scores only with logits_all
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
            if not np.all(np.isfinite(logits)):
                raise RysError(f"{name}: llama.cpp produced NaN or infinite logits "
                               f"after {len(decoded)} decoded tokens")
            decoded.append(int(np.argmax(logits)))
        text = llm.detokenize(decoded).decode("utf-8", errors="replace")
    finally:
        llm.close()
    return {"llama_cpp": llama_cpp.__version__, "tokens": decoded, "text": text,
            "log": list(llama_child.log_lines())}


def verify(path, prompt: str = "The capital of France is", n_tokens: int = 8, n_threads: int | None = None) -> dict:
    """Load `path` with llama.cpp in a child process, decode, and compare its layer kinds with rys's."""
    model = load(path)
    n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
    out = llama_child.call(_decode, str(path), prompt, n_tokens, n_threads, what=f"on {Path(path).name}")
    flags = llama_layer_map(out["log"], model.n_layer_all)
    llama_kinds = _llama_kinds(model, flags)
    expected = model.kinds()
    for i in range(model.n_trunk):
        if llama_kinds[i] != expected[i]:
            raise RysError(f"{Path(path).name}: llama.cpp typed layer {i} as {llama_kinds[i]}, "
                           f"rys expected {expected[i]}")
    return {
        "file": Path(path).name,
        "llama_cpp": out["llama_cpp"],
        "n_layer": model.n_layer_all,
        "llama_kinds": llama_kinds[: model.n_trunk] + ["extra"] * model.n_extra,
        "expected_kinds": expected,
        "n_decoded": len(out["tokens"]),
        "tokens": out["tokens"],
        "text": out["text"],
    }
