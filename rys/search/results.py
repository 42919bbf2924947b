"""Sweep results: the crash-safe store of one folder, and the reading and
merging of several folders (the shards of one sweep) for rank and report.

The store is one SQLite file per sweep folder.

Every scored item is committed as soon as it is known (WAL journal, so a
`kill -9` loses at most the items in flight), and re-running a sweep reads
back what is done instead of recomputing it.

Tables
- meta(key, value): the sweep's config and the model's identity, JSON values.
- candidates(candidate, status, layers_added, spec, path, reason, server, updated):
  candidate is "baseline" or the block as "I-J"; status is pending, ok,
  failed, skipped or pruned (skipped by a prefilter); path and server are JSON.
- items(candidate, suite, item_id, stage, score, parseable, row): one scored item;
  row is the full JSON row (raw completion, extracted answer, latency, tokens).
  stage is "search", or "holdout" for items the search never used.

Folders merge only when they hold the same model and agree on every scoring
option (rys.search.sweep_config.SCORING_KEYS): the check a resumed sweep makes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..core.errors import RysError
from .suites import ALIASES
from .sweep_config import option_name, scoring_differences

DB_NAME = "results.sqlite"
BASELINE = "baseline"  # the candidate that is the model as it is
SEARCH, HOLDOUT = "search", "holdout"  # the stages of an item
MODEL_LOCAL_KEYS = ("path",)  # model identity keys that may differ between machines holding the same file
ROW_KEYS = ("suite", "id", "score", "parseable", "scoring")  # what rank needs of every item row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    candidate TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    layers_added INTEGER NOT NULL,
    spec TEXT NOT NULL,
    path TEXT NOT NULL,
    reason TEXT,
    server TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    candidate TEXT NOT NULL,
    suite TEXT NOT NULL,
    item_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    score REAL,
    parseable INTEGER NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (candidate, suite, item_id)
);
"""


@dataclass
class CandidateRecord:
    """A candidate as the store holds it."""

    candidate: str
    status: str
    layers_added: int
    spec: str
    path: list[int]
    reason: str | None = None
    server: dict | None = None


class Store:
    """Open (creating if needed) the store of a sweep folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DB_NAME
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise RysError(f"{self.path}: not a rys result store ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # meta
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # candidates
    def put_candidate(self, c: CandidateRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.candidate, c.status, c.layers_added, c.spec, json.dumps(c.path), c.reason,
             json.dumps(c.server) if c.server is not None else None, time.time()),
        )

    def candidates(self) -> list[CandidateRecord]:
        rows = self.db.execute(
            "SELECT candidate, status, layers_added, spec, path, reason, server FROM candidates").fetchall()
        return [CandidateRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], json.loads(r[6]) if r[6] else None)
                for r in rows]

    def candidate(self, name: str) -> CandidateRecord | None:
        return next((c for c in self.candidates() if c.candidate == name), None)

    # items
    def put_item(self, candidate: str, stage: str, row: dict) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
            (candidate, row["suite"], str(row["id"]), stage, row.get("score"), int(bool(row.get("parseable"))),
             json.dumps(row)),
        )

    def suite_versions(self) -> set[tuple[str, str]]:
        """(suite, version) of every stored item row."""
        return set(self.db.execute("SELECT DISTINCT suite, json_extract(row, '$.version') FROM items").fetchall())

    def done_items(self, candidate: str) -> set[tuple[str, str]]:
        return set(self.db.execute("SELECT suite, item_id FROM items WHERE candidate = ?", (candidate,)).fetchall())

    def item_rows(self, candidate: str | None = None) -> list[dict]:
        """Full rows, each with `candidate` and `stage` added."""
        query = "SELECT candidate, stage, row FROM items"
        args: tuple = ()
        if candidate is not None:
            query += " WHERE candidate = ?"
            args = (candidate,)
        return [{**json.loads(r[2]), "candidate": r[0], "stage": r[1]} for r in self.db.execute(query, args)]


def open_existing(folder: Path) -> Store:
    """A store that must already exist (for rank and report)."""
    folder = Path(folder)
    if not (folder / DB_NAME).is_file():
        raise RysError(f"{folder}: no sweep results here (no {DB_NAME})")
    return Store(folder)



# -- reading and merging folders ------------------------------------------------


@dataclass
class Results:
    """The merged contents of one or more result folders."""

    folders: list[Path]
    model: dict | None
    config: dict | None  # the first folder's
    configs: list[dict | None]  # one per folder (shards differ in --shard, --out, ...)
    candidates: dict[str, CandidateRecord]
    items: pd.DataFrame  # candidate, stage, suite, id, group, scoring, row (the full dict)
    notes: list[str] = field(default_factory=list)

    def stage(self, stage: str) -> pd.DataFrame:
        """The items of one stage: SEARCH (every stage but the hold-out) or HOLDOUT."""
        held = self.items["stage"] == HOLDOUT
        return self.items[held if stage == HOLDOUT else ~held]


def _read_folder(folder: Path) -> tuple[dict | None, dict | None, list[CandidateRecord], list[dict]]:
    if not Path(folder).is_dir():
        raise RysError(f"{folder}: no such folder")
    with closing(open_existing(folder)) as store:
        model, config = store.get_meta("model"), store.get_meta("config")
        candidates, rows = store.candidates(), store.item_rows()
        groups = store.get_meta("groups", {})
    for row in rows:  # the group each suite pooled into when it was asked (older folders: none recorded)
        row.setdefault("group", groups.get(row.get("suite")))
    if not candidates:
        raise RysError(f"{folder}: the result store holds no candidates yet")
    missing = sorted({k for row in rows for k in ROW_KEYS if k not in row})
    if missing:
        raise RysError(f"{folder}: item rows lack {', '.join(missing)}; re-run the sweep with this rys")
    return model, config, candidates, rows


def _identity(model: dict | None) -> dict:
    return {k: v for k, v in (model or {}).items() if k not in MODEL_LOCAL_KEYS}


def check_comparable(first: Path, model, config, other: Path, model2, config2) -> None:
    """Refuse two folders that hold different models or were scored differently."""
    a, b = _identity(model), _identity(model2)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            raise RysError(f"{first} and {other} hold different models ({key}: {a.get(key)!r} vs {b.get(key)!r})")
    diff = scoring_differences(config, config2)
    if diff:
        key, va, vb = diff[0]
        raise RysError(f"{first} and {other} were measured differently ({option_name(key)} {va!r} vs {vb!r}); "
                       "rank them separately")


def _merge_candidate(old: CandidateRecord, new: CandidateRecord) -> CandidateRecord:
    """The same candidate in two shards: one measured copy wins over a failed one."""
    if old.layers_added != new.layers_added:
        raise RysError(f"candidate {old.candidate} adds {old.layers_added} layers in one folder "
                       f"and {new.layers_added} in another")
    return new if old.status != "ok" and new.status == "ok" else old


def group_of(suite: str) -> str:
    """The built-in group of a suite (math.arith -> math), else its name up to the first dot:
    the group of a row whose folder did not record one."""
    return next((alias for alias, members in ALIASES.items() if suite in members), suite.split(".")[0])


def items_frame(rows: list[dict], notes: list[str]) -> pd.DataFrame:
    """Item rows as a frame, one row per (candidate, suite, id): the first wins."""
    cols = ["candidate", "stage", "suite", "id", "group", "scoring", "row"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame({"candidate": [r["candidate"] for r in rows], "stage": [r["stage"] for r in rows],
                       "suite": [r["suite"] for r in rows], "id": [str(r["id"]) for r in rows],
                       "scoring": [r["scoring"] for r in rows], "score": [r["score"] for r in rows],
                       "row": rows})
    df["group"] = [r.get("group") or group_of(r["suite"]) for r in rows]
    key = ["candidate", "suite", "id"]
    conflicts = df[df.duplicated(key, keep=False)].groupby(key)["score"].nunique(dropna=False)
    if (conflicts > 1).any():
        notes.append(f"{int((conflicts > 1).sum())} items were scored differently in two folders; "
                     "the first folder's score is used")
    return df.drop_duplicates(key, keep="first")[cols].reset_index(drop=True)


def read(folders: list[Path]) -> Results:
    """Read and merge result folders; refuse folders that measured different things."""
    if not folders:
        raise RysError("no result folders given")
    folders = [Path(f) for f in folders]
    model = config = None
    candidates: dict[str, CandidateRecord] = {}
    rows: list[dict] = []
    configs = []
    for i, folder in enumerate(folders):
        m, c, cands, r = _read_folder(folder)
        configs.append(c)
        if i == 0:
            model, config = m, c
        else:
            check_comparable(folders[0], model, config, folder, m, c)
        for cand in cands:
            candidates[cand.candidate] = _merge_candidate(candidates[cand.candidate], cand) \
                if cand.candidate in candidates else cand
        rows += r
    notes: list[str] = []
    items = items_frame(rows, notes)
    stray = sorted(set(items["candidate"]) - set(candidates))
    if stray:
        notes.append(f"items of unknown candidates ignored: {', '.join(stray)}")
        items = items[items["candidate"].isin(candidates)]
    base = candidates.get(BASELINE)
    if base is None or base.status != "ok":
        raise RysError(f"no measured baseline in {', '.join(map(str, folders))}; deltas need one")
    return Results(folders, model, config, configs, candidates, items, notes)
