"""Running probe suites against an OpenAI-compatible server.

`run_suites` is the one entry point: `rys probe` calls it, and so will the
sweep. It returns per-item rows (raw completion kept) and per-suite
summaries with a seeded 95% bootstrap interval, and never prints."""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import __version__
from .client import TOP_LOGPROBS, ChatClient, ItemFailed
from .errors import RysError
from .extract import label_probs
from .scorers import score_text, score_value, suite_score
from .suites import Selection, Suite, resolve

MODES = ("generate", "choice")
FAIL_FAST = 5  # this many failed requests and not one success: the server is broken, stop
N_BOOT = 1000
CHOICE_PREFIX = "Answer the question below with the label of the correct option only.\n\n"
clock = time.perf_counter  # module-level so tests can freeze it

Progress = Callable[[str, int, int], None]  # (suite name, items done, items in suite)


@dataclass
class ProbeResults:
    summaries: list[dict]  # one per suite, then one per alias that groups several
    rows: list[dict]  # one per item, in suite and item order
    meta: dict  # url, mode, seed, server info: what is needed to redo the run


def user_message(suite: Suite, item, mode: str) -> str:
    """The user turn sent for an item. Choice mode asks for the label alone so
    that the first generated token is the answer."""
    if mode == "choice" and item.choices:
        return CHOICE_PREFIX + item.prompt + "\n\nReply with one of: " + ", ".join(item.choices) + "."
    return suite.prefix + item.prompt + suite.suffix


def ask(client: ChatClient, suite: Suite, item, mode: str) -> dict:
    """One item, one request, one row. A failed request gives a row with its
    error and score 0 instead of an exception."""
    choice = mode == "choice" and bool(item.choices)
    row = {"suite": suite.name, "id": item.id, "version": item.version,
           "mode": "choice" if choice else "generate", "reference": item.reference}
    try:
        if choice:
            reply = client.chat(user_message(suite, item, mode), max_tokens=1, top_logprobs=TOP_LOGPROBS)
        else:
            reply = client.chat(user_message(suite, item, mode), max_tokens=suite.max_tokens)
    except ItemFailed as e:
        return {**row, "completion": None, "extracted": None, "parseable": False,
                "score": None if item.scoring == "eqbench" else 0.0, "latency": None,
                "prompt_tokens": 0, "completion_tokens": 0, "error": str(e)}
    row.update(completion=reply.text, latency=reply.latency,
               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens, error=None)
    if choice:
        probs = label_probs(reply.top_logprobs, item.choices)
        picked = max(probs, key=probs.get) if probs else None
        total = sum(probs.values())
        row.update(extracted=picked, parseable=picked is not None, score=score_value(item, picked),
                   option_probs=probs, p_correct=probs.get(item.reference, 0.0) / total if total else 0.0)
    else:
        row.update(score_text(item, reply.text))
    return row


class _FailFast:
    """Stops a run whose first requests all fail, instead of waiting out every
    item's timeout against a broken server."""

    def __init__(self, url: str):
        self.url, self.ok, self.failed = url, 0, 0

    def record(self, row: dict) -> None:
        if row["error"] is None:
            self.ok += 1
            return
        self.failed += 1
        if self.ok == 0 and self.failed >= FAIL_FAST:
            raise RysError(f"the first {self.failed} requests to {self.url} all failed: {row['error']}")


def run_suite(client, suite: Suite, mode: str, concurrency: int, guard: _FailFast,
              progress: Progress | None = None) -> list[dict]:
    rows: list[dict | None] = [None] * len(suite.items)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = {pool.submit(ask, client, suite, item, mode): i for i, item in enumerate(suite.items)}
        for done, fut in enumerate(as_completed(futures), 1):
            rows[futures[fut]] = row = fut.result()
            guard.record(row)
            if progress:
                progress(suite.name, done, len(suite.items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error: drop the queued items
    return rows


def bootstrap_ci(scoring: str, rows: list[dict], seed: int, name: str, n_boot: int = N_BOOT) -> tuple[float, float]:
    """95% percentile interval of the suite score over items resampled with
    replacement; the seed and the suite name fix the resamples."""
    n = len(rows)
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if scoring == "eqbench":  # the suite score is not a plain mean: recompute it per resample
        stats = [suite_score(scoring, [rows[i] for i in rng.integers(0, n, n)])[0] for _ in range(n_boot)]
    else:
        scores = np.array([r["score"] or 0.0 for r in rows])
        stats = np.concatenate([scores[rng.integers(0, n, (min(100, n_boot - k), n))].mean(axis=1)
                                for k in range(0, n_boot, 100)])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def summarise(name: str, scoring: str, rows: list[dict], seconds: float, seed: int,
              n_boot: int = N_BOOT, version: str | None = None) -> dict:
    score, parse_rate = suite_score(scoring, rows)
    lo, hi = bootstrap_ci(scoring, rows, seed, name, n_boot)
    summary = {"suite": name, "score": score, "ci_low": lo, "ci_high": hi, "n": len(rows),
               "parse_rate": parse_rate, "tokens": sum(r["completion_tokens"] for r in rows),
               "seconds": seconds, "failed": sum(r["error"] is not None for r in rows),
               "scale": 100 if scoring == "eqbench" else 1, "version": version}
    chosen = [r["p_correct"] for r in rows if "p_correct" in r]
    if chosen:
        summary["p_correct"] = float(np.mean(chosen))
    return summary


def run_suites(url: str, suites: str | Selection = "math,eq,reasoning", *, limit: int | None = None,
               seed: int = 0, mode: str = "generate", concurrency: int = 4, timeout: float = 120.0,
               model: str = "rys", progress: Progress | None = None, client: ChatClient | None = None,
               n_boot: int = N_BOOT) -> ProbeResults:
    """Ask every item of the selected suites and score the answers.

    `suites` is a --suite spec or an already resolved Selection. Suites run one
    after the other (their prompts share a prefix, which the server caches),
    items within a suite `concurrency` at a time. Raises RysError when the
    server cannot be reached or no request succeeds."""
    if mode not in MODES:
        raise RysError(f"unknown mode {mode!r}; choose generate or choice")
    if concurrency < 1:
        raise RysError(f"--concurrency must be at least 1, got {concurrency}")
    selection = suites if isinstance(suites, Selection) else resolve(suites, limit, seed)
    client = client or ChatClient(url, model=model, timeout=timeout)
    guard = _FailFast(url)
    rows, summaries, seconds = [], [], {}
    for suite in selection.suites:
        start = clock()
        suite_rows = run_suite(client, suite, mode, concurrency, guard, progress)
        seconds[suite.name] = clock() - start
        rows += suite_rows
        summaries.append(summarise(suite.name, suite.scoring, suite_rows, seconds[suite.name], seed, n_boot, suite.version))
    if rows and all(r["error"] for r in rows):
        raise RysError(f"every request to {url} failed: {rows[0]['error']}")
    by_name = {s.name: s for s in selection.suites}
    for alias, members in selection.groups.items():
        # An alias's score pools its members' items (reasoning = fraction correct over all five).
        pooled = [r for r in rows if r["suite"] in members]
        summaries.append(summarise(alias, by_name[members[0]].scoring, pooled,
                                   sum(seconds[m] for m in members), seed, n_boot))
    meta = {"url": url, "mode": mode, "seed": seed, "limit": limit, "concurrency": concurrency,
            "rys_version": __version__, "server": client.server_info(),
            "suites": {s.name: {"version": s.version, "source": s.source, "n": len(s.items)} for s in selection.suites}}
    return ProbeResults(summaries, rows, meta)
