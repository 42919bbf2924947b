"""The crash-safe result store of a sweep: one SQLite file per sweep folder.

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
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .errors import RysError

DB_NAME = "results.sqlite"

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
class Candidate:
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
    def put_candidate(self, c: Candidate) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.candidate, c.status, c.layers_added, c.spec, json.dumps(c.path), c.reason,
             json.dumps(c.server) if c.server is not None else None, time.time()),
        )

    def candidates(self) -> list[Candidate]:
        rows = self.db.execute(
            "SELECT candidate, status, layers_added, spec, path, reason, server FROM candidates").fetchall()
        return [Candidate(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], json.loads(r[6]) if r[6] else None)
                for r in rows]

    def candidate(self, name: str) -> Candidate | None:
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


def read_rows(folder: Path) -> list[dict]:
    with closing(open_existing(folder)) as store:
        return store.item_rows()
