"""Benchmark: probe throughput of the sweep's evaluation vs one request at a time.

Serves SmolLM2-135M-Instruct with llama-server (`--slots` slots) and, in one
run against that same server, scores the same items:

  1. one request at a time, generated (the naive loop);
  2. the way the sweep does it (`rys.search.probing.ask_all`: `--slots` requests in
     flight, one pool over all suites, longest token budgets first, a suite's
     prompts together so the server reuses their cached prefix), generated;
  3. the same in choice mode (multiple-choice items read from the first
     token's option probabilities; the math items still generate), as the
     demo sweep runs.

It also measures the server's own ceiling for (2): tokens per second of
`--slots` parallel fixed-length generations vs one, so the ratio in (2) can
be read against what batching gives on this machine. Machines are noisy:
read the ratios.

Usage: python benchmarks/probe_throughput.py [--suite math,reasoning] [--limit 8] [--slots 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from rys.llamacpp.assets import smollm2_path
from rys.search.probing import run_suites
from rys.search.serving.server import LlamaServer
from rys.search.suites import resolve


def timed(url: str, selection, concurrency: int, mode: str = "generate") -> tuple[float, int, float]:
    start = time.perf_counter()
    res = run_suites(url, selection, concurrency=concurrency, mode=mode, n_boot=10)
    seconds = time.perf_counter() - start
    tokens = sum(r["completion_tokens"] for r in res.rows)
    mean = sum((r["score"] or 0.0) for r in res.rows) / len(res.rows)
    return seconds, tokens, mean


def decode_rate(url: str, parallel: int, tokens: int = 128) -> float:
    """Generated tokens per second with `parallel` fixed-length generations in flight."""
    def one(i: int) -> int:
        body = {"messages": [{"role": "user", "content": f"Write story number {i}."}], "max_tokens": tokens,
                "temperature": 0, "ignore_eos": True}
        return requests.post(url + "/v1/chat/completions", json=body, timeout=600).json()["usage"]["completion_tokens"]
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        n = sum(pool.map(one, range(2 * parallel)))
    return n / (time.perf_counter() - start)


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
        url = srv.base_url
        timed(url, resolve("math.arith", 2, 1), 1)  # warm-up: page in the weights
        one_rate, many_rate = decode_rate(url, 1), decode_rate(url, args.slots)
        seq = timed(url, selection, 1)
        con = timed(url, selection, args.slots)
        cho = timed(url, selection, args.slots, "choice")
    print(f"{n_items} items ({args.suite}, limit {args.limit}), SmolLM2-135M-Instruct Q4_1, llama-server -np {args.slots}")
    print(f"server ceiling: {one_rate:6.1f} tokens/s with 1 generation, {many_rate:6.1f} with {args.slots} "
          f"in parallel: x{many_rate / one_rate:.2f}")
    for label, (s, tok, score) in (("one at a time, generate", seq), (f"sweep x{args.slots}, generate", con),
                                   (f"sweep x{args.slots}, choice", cho)):
        print(f"{label:<24}: {s:7.1f} s  {tok:6d} tokens  {tok / s:6.1f} tokens/s  {n_items / s:5.2f} items/s  "
              f"mean score {score:.3f}")
    print(f"throughput ratio (items/s) vs one at a time: generate {seq[0] / con[0]:.2f}, "
          f"choice {seq[0] / cho[0]:.2f}   target >= 3")


if __name__ == "__main__":
    main()
