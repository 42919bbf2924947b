"""Running probe suites against an OpenAI-compatible server.

`run_suites` is the one entry point: `rys probe` calls it, and so will the
sweep. It returns per-item rows (raw completion kept) and per-suite
summaries with a seeded 95% bootstrap interval, and never prints."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import __version__
from .bootstrap import N_BOOT, bootstrap_ci
from .serving.client import TOP_LOGPROBS, ChatClient, ItemFailed
from ..core.errors import RysError
from .extract import label_probs
from .scorers import scale, score_text, score_value, suite_score
from .suites import Selection, Suite, resolve

MODES = ("generate", "choice")
FAIL_FAST = 5  # this many failed requests and not one success: the server is broken, stop
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


def _failed(item, error: str) -> dict:
    """The answer fields of an item that could not be scored: unparseable, score 0
    (EQ-Bench: no score, so the item is left out as EQ-Bench leaves it out)."""
    return {"extracted": None, "parseable": False, "score": None if item.scoring == "eqbench" else 0.0,
            "error": error}


def ask(client: ChatClient, suite: Suite, item, mode: str) -> dict:
    """One item, one request, one row. A failed request gives a row with its
    error and score 0 instead of an exception; so does a reply whose scoring
    raised (a bug: it costs the item, not the run; the completion is kept)."""
    choice = mode == "choice" and bool(item.choices)
    row = {"suite": suite.name, "id": item.id, "version": item.version,
           "mode": "choice" if choice else "generate", "reference": item.reference}
    try:
        if choice:
            reply = client.chat(user_message(suite, item, mode), max_tokens=1, top_logprobs=TOP_LOGPROBS)
        else:
            reply = client.chat(user_message(suite, item, mode), max_tokens=suite.max_tokens)
    except ItemFailed as e:
        return {**row, "completion": None, "latency": None, "prompt_tokens": 0, "completion_tokens": 0,
                **_failed(item, str(e))}
    row.update(completion=reply.text, latency=reply.latency,
               prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens, error=None)
    try:
        if choice:
            probs = label_probs(reply.top_logprobs, item.choices)
            picked = max(probs, key=probs.get) if probs else None
            total = sum(probs.values())
            row.update(extracted=picked, parseable=picked is not None, score=score_value(item, picked),
                       option_probs=probs, p_correct=probs.get(item.reference, 0.0) / total if total else 0.0)
        else:
            row.update(score_text(item, reply.text))
    except Exception as e:  # noqa: BLE001 - any scoring bug, recorded on the item
        row.update(_failed(item, f"scoring failed: {type(e).__name__}: {e}"))
    return row


class FailFast:
    """Stops a run whose first requests all fail, instead of waiting out every
    item's timeout against a broken server."""

    def __init__(self, url: str):
        self.url, self.ok, self.failed = url, 0, 0

    def record(self, row: dict) -> None:
        if row["error"] is None or row["completion"] is not None:  # the server answered
            self.ok += 1
            return
        self.failed += 1
        if self.ok == 0 and self.failed >= FAIL_FAST:
            raise RysError(f"the first {self.failed} requests to {self.url} all failed: {row['error']}")


def budget(suite: Suite, item, mode: str) -> int:
    """Tokens an item may generate: one in choice mode, the suite's limit otherwise."""
    return 1 if mode == "choice" and item.choices else suite.max_tokens


def ask_all(client, pairs: list, mode: str, concurrency: int, on_row: Callable[[Suite, dict], None]) -> None:
    """Ask every (suite, item) pair, `concurrency` requests at a time, and
    call `on_row(suite, row)` in the caller's thread as each one completes.

    One pool serves all suites, so no suite waits for the slowest item of the
    one before it. Items with the largest token budget go first (a long item
    started last would leave the other server slots idle at the end); within
    a budget, suite order is kept, so consecutive requests share a prompt
    prefix the server has cached. An exception from `on_row` stops the run:
    queued items are dropped and requests in flight are not waited for."""
    order = sorted(pairs, key=lambda p: -budget(p[0], p[1], mode))
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = {pool.submit(ask, client, suite, item, mode): suite for suite, item in order}
        for fut in as_completed(futures):
            on_row(futures[fut], fut.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def summarise(name: str, scoring: str, rows: list[dict], seconds: float, seed: int,
              n_boot: int = N_BOOT, version: str | None = None) -> dict:
    score, parse_rate = suite_score(scoring, rows)
    lo, hi = bootstrap_ci(scoring, rows, seed, name, n_boot)
    summary = {"suite": name, "score": score, "ci_low": lo, "ci_high": hi, "n": len(rows),
               "parse_rate": parse_rate, "tokens": sum(r["completion_tokens"] for r in rows),
               "seconds": seconds, "failed": sum(r["error"] is not None for r in rows),
               "scale": scale(scoring), "version": version}
    chosen = [r["p_correct"] for r in rows if "p_correct" in r]
    if chosen:
        summary["p_correct"] = float(np.mean(chosen))
    return summary


def _union_seconds(span: dict, members) -> float:
    """Wall seconds from the first request of any member suite to the last answer."""
    spans = [span[m] for m in members if m in span]
    return max(hi for _, hi in spans) - min(lo for lo, _ in spans) if spans else 0.0


def check_asking(mode: str, concurrency: int) -> None:
    """RysError unless items can be asked this way (`rys probe` and the sweep)."""
    if mode not in MODES:
        raise RysError(f"unknown mode {mode!r}; choose generate or choice")
    if concurrency < 1:
        raise RysError(f"--concurrency must be at least 1, got {concurrency}")


def run_suites(url: str, suites: str | Selection = "math,eq,reasoning", *, limit: int | None = None,
               seed: int = 0, mode: str = "generate", concurrency: int = 4, timeout: float = 120.0,
               model: str = "rys", progress: Progress | None = None, client: ChatClient | None = None,
               n_boot: int = N_BOOT, eq_revise: bool = False) -> ProbeResults:
    """Ask every item of the selected suites and score the answers.

    `suites` is a --suite spec (EQ suites asked as `eq_revise` says, see
    suites.resolve) or an already resolved Selection. All items go
    through `ask_all`, `concurrency` at a time; a suite's `seconds` is the wall
    span from its first request to its last answer (suites overlap). Raises
    RysError when the server cannot be reached or no request succeeds."""
    check_asking(mode, concurrency)
    selection = suites if isinstance(suites, Selection) else resolve(suites, limit, seed, eq_revise)
    client = client or ChatClient(url, model=model, timeout=timeout)
    guard = FailFast(url)
    per_suite: dict[str, list] = {s.name: [None] * len(s.items) for s in selection.suites}
    index = {(s.name, str(it.id)): i for s in selection.suites for i, it in enumerate(s.items)}
    span: dict[str, list[float]] = {}  # suite -> [first request sent, last answer received]
    answered = {s.name: 0 for s in selection.suites}
    start = clock()

    def on_row(suite: Suite, row: dict) -> None:
        per_suite[suite.name][index[suite.name, str(row["id"])]] = row
        guard.record(row)
        now = clock()
        sent = max(start, now - (row["latency"] or 0.0))
        lo, hi = span.get(suite.name, (sent, now))
        span[suite.name] = [min(lo, sent), max(hi, now)]
        answered[suite.name] += 1
        if progress:
            progress(suite.name, answered[suite.name], len(suite.items))

    ask_all(client, [(s, it) for s in selection.suites for it in s.items], mode, concurrency, on_row)
    rows, summaries = [], []
    seconds = {name: hi - lo for name, (lo, hi) in span.items()}
    for suite in selection.suites:
        rows += per_suite[suite.name]
        seconds.setdefault(suite.name, 0.0)
        summaries.append(summarise(suite.name, suite.scoring, per_suite[suite.name], seconds[suite.name],
                                   seed, n_boot, suite.version))
    if rows and all(r["error"] and r["completion"] is None for r in rows):
        raise RysError(f"every request to {url} failed: {rows[0]['error']}")
    by_name = {s.name: s for s in selection.suites}
    for alias, members in selection.groups.items():
        # An alias's score pools its members' items (reasoning = fraction correct over all five).
        pooled = [r for r in rows if r["suite"] in members]
        summaries.append(summarise(alias, by_name[members[0]].scoring, pooled,
                                   _union_seconds(span, members), seed, n_boot))
    meta = {"url": url, "mode": mode, "seed": seed, "limit": limit, "concurrency": concurrency, "eq_revise": eq_revise,
            "rys_version": __version__, "server": client.server_info(),
            "suites": {s.name: {"version": s.version, "source": s.source, "n": len(s.items)} for s in selection.suites}}
    return ProbeResults(summaries, rows, meta)
