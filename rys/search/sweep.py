"""Circuit search: build every candidate, serve it, probe it, keep every row.

A sweep is resumable: every scored item is committed to the folder's store
(rys/search/results.py) as soon as it is known, and a re-run with the same options
skips everything already scored. Candidates (rys/search/candidates.py) are the
baseline (the model as it is) plus one duplicated block each.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .candidates import Candidate, candidates, model_identity
from ..core.errors import RysError
from .probing import check_asking
from ..core.model import load
from .results import BASELINE, HOLDOUT, SEARCH, CandidateRecord, Store, read
from ..surgery.rewrite import write_plan
from .scratch import scratch_folder
from .stats import leaders
from .sweep_config import SweepConfig, option_name, scoring_differences

HOLDOUT_FAILED = "hold-out re-measurement failed: "  # the reason of an ok candidate whose hold-out run failed


@dataclass
class Events:
    """What a sweep reports while it runs (the CLI draws progress bars from these)."""

    candidate: Callable[[str, str], None] = lambda name, what: None  # (candidate, "building"/"probing"/...)
    items: Callable[[str, int, int], None] = lambda name, done, total: None
    finished: Callable[[str, str, str | None], None] = lambda name, status, reason: None


@dataclass
class SweepResult:
    folder: Path
    counts: dict = field(default_factory=dict)


def split_items(selection, limit: int, holdout: int):
    """Search suites (first `limit` items of each) and hold-out suites (the next `holdout`)."""
    search = [replace(s, items=s.items[:limit]) for s in selection.suites]
    held = [replace(s, items=s.items[limit:limit + holdout]) for s in selection.suites] if holdout else []
    return search, [s for s in held if s.items]


def _check_resume(store: Store, cfg: SweepConfig, identity: dict) -> None:
    old_id, old_cfg = store.get_meta("model"), store.get_meta("scoring")
    if old_id is None:
        store.set_meta("model", identity)
        store.set_meta("scoring", cfg.scoring_identity())
        return
    if old_id != identity:
        raise RysError(f"{store.folder} holds results of another model ({old_id['file']}); choose another --out")
    new_cfg = cfg.scoring_identity()
    # A key the folder does not record predates it (an older rys): it is taken as matching and recorded now.
    diff = scoring_differences({**new_cfg, **(old_cfg or {})}, new_cfg)
    if diff:
        said = ", ".join(f"{option_name(k)} {a!r} -> {b!r}" for k, a, b in diff)
        raise RysError(f"{store.folder} holds results scored differently ({said}); choose another --out")
    if old_cfg != new_cfg:
        store.set_meta("scoring", new_cfg)


def _check_versions(store: Store, suites) -> None:
    """Refuse a folder whose stored rows were asked in another version of a
    suite (an older rys, EQ asked with or without revision): a resumed sweep
    must not mix them with new rows, whatever options the folder records."""
    want = {s.name: s.version for s in suites}
    for suite, version in sorted(store.suite_versions()):
        if suite in want and version != want[suite]:
            raise RysError(f"{store.folder} holds {suite} results of suite version {version!r}, "
                           f"this sweep asks version {want[suite]!r}; choose another --out")


class Sweep:
    """One sweep over one model into one folder. `run()` does everything and can be re-run."""

    def __init__(self, cfg: SweepConfig, out: Path, events: Events | None = None):
        from .suites import resolve

        self.cfg = cfg
        self.out = Path(out)
        self.events = events or Events()
        self.model = load(cfg.model)
        check_asking(cfg.mode, cfg.concurrency)
        self.planned = candidates(self.model, cfg)
        selection = resolve(cfg.suite, cfg.limit + cfg.holdout, cfg.seed, cfg.eq_revise)
        self.search_suites, self.holdout_suites = split_items(selection, cfg.limit, cfg.holdout)
        self.groups = selection.groups
        self.store = Store(self.out)
        _check_resume(self.store, cfg, model_identity(self.model))
        _check_versions(self.store, selection.suites)
        self.store.set_meta("config", asdict(cfg))
        self.store.set_meta("groups", {**self.store.get_meta("groups", {}), **selection.group_of})
        self.files: dict[str, Path] = {BASELINE: self.model.path}

    # --- candidates -------------------------------------------------------
    def _record_plans(self) -> None:
        known = {c.candidate: c for c in self.store.candidates()}
        for p in self.planned:
            old = known.get(p.name)
            if old and old.status in ("ok", "pruned", "skipped"):
                continue
            status = "skipped" if p.skip_reason else "pending"
            self.store.put_candidate(CandidateRecord(p.name, status, p.layers_added, p.spec, p.path, p.skip_reason))
            if p.skip_reason:
                self.events.finished(p.name, "skipped", p.skip_reason)

    def status(self, name: str) -> str:
        c = self.store.candidate(name)
        return c.status if c else "pending"

    def _set(self, p: Candidate, status: str, reason: str | None = None, server: dict | None = None) -> None:
        old = self.store.candidate(p.name)
        server = server if server is not None else (old.server if old else None)
        self.store.put_candidate(CandidateRecord(p.name, status, p.layers_added, p.spec, p.path, reason, server))

    def file_for(self, p: Candidate, scratch: Path) -> Path:
        """The candidate's GGUF, built into the scratch folder on first use."""
        if p.name not in self.files:
            self.events.candidate(p.name, "building")
            target = scratch / f"{self.model.path.stem}-{p.plan.label}.gguf"
            write_plan(p.plan, target, force=True)
            self.files[p.name] = target
        return self.files[p.name]

    def drop_file(self, p: Candidate) -> None:
        """Delete a candidate's built file (never the baseline: that is the user's model)."""
        if p.name == BASELINE:
            return
        path = self.files.pop(p.name, None)
        if path and not self.cfg.keep_models:
            path.unlink(missing_ok=True)

    # --- probing ----------------------------------------------------------
    def probe(self, p: Candidate, scratch: Path, suites, stage: str) -> bool:
        """Score `p` on every item of `suites` not yet in the store. False if the candidate failed."""
        from .serving.server import LlamaServer

        done = self.store.done_items(p.name)
        todo = [(s, it) for s in suites for it in s.items if (s.name, str(it.id)) not in done]
        total = sum(len(s.items) for s in suites)
        if not todo:
            return True
        path = self.file_for(p, scratch)
        self.events.candidate(p.name, f"probing {stage}")
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        extra = {"ctx": self.cfg.ctx} if self.cfg.ctx else {}
        try:
            with LlamaServer(path, log_path=logs / f"{p.name}.log", slots=self.cfg.concurrency,
                             server_bin=self.cfg.server_bin, threads=self.cfg.threads, **extra) as srv:
                self._set(p, "running", server=srv.props)
                self._ask_all(srv, p, todo, stage, total)
        except RysError as exc:
            self._set(p, "failed", str(exc))
            self.events.finished(p.name, "failed", str(exc))
            return False
        return True

    def _ask_all(self, srv, p: Candidate, todo: list, stage: str, total: int) -> None:
        """Ask every (suite, item) of `todo` on `srv`, storing each row as it arrives."""
        from .serving.client import ChatClient
        from .probing import FailFast, ask_all

        client = ChatClient(srv.base_url, timeout=self.cfg.timeout)
        guard = FailFast(srv.base_url)
        done = total - len(todo)

        def on_row(suite, row: dict) -> None:
            nonlocal done
            row["scoring"] = suite.scoring
            if row["error"] and not srv.alive():
                raise srv.death()
            guard.record(row)
            self.store.put_item(p.name, stage, row)
            done += 1
            self.events.items(p.name, done, total)

        # On Ctrl-C or an error, requests in flight are not waited for: the
        # server is stopped right after this and they fail fast.
        ask_all(client, todo, self.cfg.mode, self.cfg.concurrency, on_row)

    # --- the whole sweep ----------------------------------------------------
    def run(self) -> SweepResult:
        self._record_plans()
        if self.cfg.keep_models:
            scratch = self.out / "models"
            scratch.mkdir(parents=True, exist_ok=True)
        else:
            scratch = scratch_folder(self.model.file.size, self.out)
        try:
            live = [p for p in self.planned if not p.skip_reason]
            crashed: set[str] = set()
            if self.cfg.prefilter == "kl":
                crashed = self._prefilter(live, scratch)
            live = [p for p in live if self.status(p.name) != "pruned" and p.name not in crashed]
            if self.cfg.halving:
                self._halving(live, scratch)
            else:
                for p in live:
                    self._finish(p, self.probe(p, scratch, self.search_suites, SEARCH))
            if self.holdout_suites:
                self._holdout(live, scratch)
        finally:
            for p in self.planned:
                self.drop_file(p)
            if not self.cfg.keep_models:
                shutil.rmtree(scratch, ignore_errors=True)
        counts: dict[str, int] = {}
        for c in self.store.candidates():
            counts[c.status] = counts.get(c.status, 0) + 1
        return SweepResult(self.out, counts)

    def _finish(self, p: Candidate, ok: bool, reason: str | None = None) -> None:
        if ok:
            self._set(p, "ok", reason)
            self.events.finished(p.name, "ok", reason)
        self.drop_file(p)

    def _prefilter(self, live: list[Candidate], scratch: Path) -> set[str]:
        """Mark candidates whose distributions drift too far from the baseline as pruned;
        the names of those llama.cpp could not run (marked failed)."""
        from .prefilter import mean_kl, next_token_logprobs

        kl_done = self.store.get_meta("kl", {})
        base = None
        crashed: set[str] = set()
        for p in live:
            if p.name == BASELINE or p.name in kl_done or self.status(p.name) in ("ok", "pruned"):
                continue
            logs = self.out / "logs"
            if base is None:  # the baseline must load: without it nothing can be compared
                self.events.candidate(BASELINE, "prefilter")
                base = next_token_logprobs(self.model.path, n_threads=self.cfg.threads,
                                           log=logs / f"prefilter-{BASELINE}.log")
            self.events.candidate(p.name, "prefilter")
            try:
                cand = next_token_logprobs(self.file_for(p, scratch), n_threads=self.cfg.threads,
                                           log=logs / f"prefilter-{p.name}.log")
            except RysError as exc:  # llama.cpp crashed or refused this candidate: record it, go on
                self._set(p, "failed", str(exc))
                self.events.finished(p.name, "failed", str(exc))
                self.drop_file(p)
                crashed.add(p.name)
                continue
            kl = mean_kl(base, cand)
            kl_done[p.name] = kl
            self.store.set_meta("kl", kl_done)
            if kl > self.cfg.kl_threshold:
                reason = f"KL prefilter: {kl:.3f} nats/token > {self.cfg.kl_threshold}"
                self._set(p, "pruned", reason)
                self.events.finished(p.name, "pruned", reason)
                self.drop_file(p)
        return crashed

    def _leaders(self, names: list[str]) -> list[str]:
        """`names` ordered best first by the combined score on what is stored now (rys.search.stats.leaders)."""
        return leaders(read([self.out]), names)

    def _halving(self, live: list[Candidate], scratch: Path) -> None:
        """Successive halving over items: every candidate gets a first slice of
        items; the better half gets twice as many; and so on up to --limit."""
        base = next(p for p in live if p.name == BASELINE)
        alive = [p for p in live if p.name != BASELINE]
        # With k halvings left one candidate remains; start with limit / 2**k items
        # so that the last rung uses all of them (7 candidates, limit 16: 2, 4, 8, 16).
        halvings = max(0, (len(alive) - 1).bit_length())
        n = max(min(2, self.cfg.limit), -(-self.cfg.limit // 2 ** halvings))
        rung = 0
        while True:
            suites = [replace(s, items=s.items[:n]) for s in self.search_suites]
            self._finish(base, self.probe(base, scratch, suites, SEARCH), None)
            for p in alive:
                self._finish(p, self.probe(p, scratch, suites, SEARCH), f"halving rung {rung}: {n} items per suite")
            alive = [p for p in alive if self.status(p.name) == "ok"]
            if n >= self.cfg.limit or len(alive) <= 1:
                break
            keep = set(self._leaders([p.name for p in alive])[: (len(alive) + 1) // 2])
            alive = [p for p in alive if p.name in keep]
            n, rung = min(self.cfg.limit, n * 2), rung + 1
        for p in alive:  # the survivors always end with every search item
            self._finish(p, self.probe(p, scratch, self.search_suites, SEARCH), None)

    def _holdout(self, live: list[Candidate], scratch: Path) -> None:
        """Re-measure the top candidates and the baseline on items the search never used.

        `probe` marks a candidate `running` while its server is up; its search
        scores stand whatever happens here, so it goes back to `ok` (with the
        error as its reason if the re-measurement failed; a re-run retries it)."""
        names = self._leaders([p.name for p in live if self.status(p.name) == "ok"])[: self.cfg.holdout_top]
        for p in live:
            if p.name == BASELINE or p.name in names:
                searched = self.store.candidate(p.name).reason
                if searched and searched.startswith(HOLDOUT_FAILED):  # a previous run's: retried now
                    searched = None
                if self.probe(p, scratch, self.holdout_suites, HOLDOUT):
                    self._set(p, "ok", searched)
                    self.events.finished(p.name, "re-measured on hold-out items", None)
                else:
                    self._set(p, "ok", HOLDOUT_FAILED + self.store.candidate(p.name).reason)
                self.drop_file(p)
