"""Benchmark: probe throughput of the sweep's evaluation vs one request at a time.

Serves SmolLM2-135M-Instruct with llama-server (4 slots) and, in one run,
scores the same items twice against that same server: one request at a time,
then the way the sweep does it (--concurrency 4, items of a suite together so
the server reuses the shared prompt prefix). Prints generated tokens per
second of each and their ratio. Machines are noisy: read the ratio.

Usage: python benchmarks/probe_throughput.py [--suite math,reasoning] [--limit 8] [--slots 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rys.assets import smollm2_path
from rys.evaluate import run_suites
from rys.server import LlamaServer
from rys.suites import resolve


def timed(url: str, selection, concurrency: int) -> tuple[float, int, float]:
    start = time.perf_counter()
    res = run_suites(url, selection, concurrency=concurrency, n_boot=10)
    seconds = time.perf_counter() - start
    tokens = sum(r["completion_tokens"] for r in res.rows)
    mean = sum((r["score"] or 0.0) for r in res.rows) / len(res.rows)
    return seconds, tokens, mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="math,reasoning")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    selection = resolve(args.suite, args.limit, 0)
    n_items = sum(len(s.items) for s in selection.suites)
    log = Path(tempfile.gettempdir()) / "rys-bench-server.log"
    with LlamaServer(smollm2_path(), log_path=log, slots=args.slots, threads=args.threads) as srv:
        timed(srv.base_url, resolve("math.arith", 2, 1), 1)  # warm-up: page in the weights
        seq_s, seq_tok, seq_score = timed(srv.base_url, selection, 1)
        con_s, con_tok, con_score = timed(srv.base_url, selection, args.slots)
    print(f"{n_items} items ({args.suite}, limit {args.limit}), SmolLM2-135M-Instruct Q4_1, llama-server -np {args.slots}")
    print(f"one at a time : {seq_s:7.1f} s  {seq_tok:6d} tokens  {seq_tok / seq_s:7.1f} tokens/s  {n_items / seq_s:5.2f} items/s  mean score {seq_score:.3f}")
    print(f"sweep (x{args.slots})   : {con_s:7.1f} s  {con_tok:6d} tokens  {con_tok / con_s:7.1f} tokens/s  {n_items / con_s:5.2f} items/s  mean score {con_score:.3f}")
    print(f"throughput ratio (items/s): {seq_s / con_s:.2f}   target >= 3")


if __name__ == "__main__":
    main()
