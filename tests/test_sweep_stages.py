"""Every sweep option that adds a stage (hold-out, halving, KL prefilter,
shards) ends, after one run, with every candidate in a final state, and
`rys rank` and `rys report` then work on the folder.

llama-server is replaced by a stand-in (an OpenAI-compatible fake per served
file) whose answers are as good as the candidate it serves: each candidate
misses every math.arith answer by a known fraction, so its partial credit,
its delta and the ranking are known. Building candidates and the KL prefilter
are real (tiny models, llama-cpp-python)."""

import json
import re
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fake_openai import FakeOpenAI, right_text, wrong_text
from support.shared_data import DATASETS

from support import tiny_models
from rys.search.serving import server
from rys.cli import cli
from rys.core.errors import RysError
from rys.search.probing import user_message
from rys.search.results import Store
from rys.search.suites import resolve
from rys.search.results import BASELINE

FINAL = {"ok", "failed", "skipped", "pruned"}
BLOCKS = ["0-1", "2-3", "4-5", "6-7"]
BY_RANK = ["0-1", "2-3", "4-5", "6-7"]  # misses: 0.05, 0.25, 0.45, 0.65 (baseline 0.35)
# KL of the blocks from the baseline on this model, measured: 0-1 0.197, 2-3 0.096,
# 4-5 0.061, 6-7 0.063 nats/token. This threshold prunes 0-1 alone.
KL = 0.15


def miss(candidate: str) -> float:
    """How far off the candidate's answers are: the baseline 0.35, block a-b 0.05 + 0.1 a."""
    return 0.35 if candidate == BASELINE else 0.05 + 0.1 * int(candidate.split("-")[0])


def candidate_of(model: Path, stem: str) -> str:
    m = re.fullmatch(re.escape(stem) + r"-rys_(\d+-\d+)\.gguf", model.name)
    return m[1] if m else BASELINE


class StandIn:
    """Takes the place of rys.search.serving.server.LlamaServer for a sweep: serves `model` as
    a FakeOpenAI that answers each item of `items` (prompt -> item) as well as
    the candidate in the file would."""

    items: dict = {}
    stem = ""
    served: list[str] = []  # candidates in the order they were served

    def __init__(self, model, *, log_path=None, slots=1, **kw):
        self.candidate = candidate_of(Path(model), self.stem)
        self.props = {"total_slots": slots, "build_info": "stand-in"}

    def __enter__(self):
        self.fake = FakeOpenAI()
        self.fake.responder = self.answer
        StandIn.served.append(self.candidate)
        return self

    def __exit__(self, *exc):
        self.fake.close()

    @property
    def base_url(self) -> str:
        return self.fake.url

    def alive(self) -> bool:
        return True

    def log_tail(self, n: int = 20) -> list[str]:
        return []

    def answer(self, payload) -> str:
        item, off = self.items[payload["messages"][-1]["content"]], miss(self.candidate)
        if item.scoring == "partial":  # credit 1 - off (as long as the digits stay)
            return f"The answer is {round(item.reference * (1 - off))}."
        right = zlib.crc32(str(item.id).encode()) % 100 >= 100 * off  # the better, the more items right
        return right_text(item) if right else wrong_text(item)


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """(model, sweep(folder, *args) -> stdout): sweeps of a tiny 8-layer llama against the stand-in."""
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    monkeypatch.setattr(server, "LlamaServer", StandIn)
    monkeypatch.setattr(StandIn, "stem", model.stem)
    monkeypatch.setattr(StandIn, "served", [])

    def sweep(folder, *args, suite="math.arith", limit=4, holdout=0):
        sel = resolve(suite, limit + holdout, 0)
        StandIn.items = {user_message(s, it, "generate"): it for s in sel.suites for it in s.items}
        r = CliRunner().invoke(cli, ["sweep", str(model), "--suite", suite, "--limit", str(limit),
                                     "--holdout", str(holdout), "--concurrency", "2", "--threads", "1",
                                     "--out", str(folder), "-q", *map(str, args)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.stdout

    return model, sweep


def statuses(folder: Path) -> dict[str, tuple[str, str | None]]:
    with Store(folder) as store:
        return {c.candidate: (c.status, c.reason) for c in store.candidates()}


def rank_and_report(*folders: Path) -> list[dict]:
    """`rys rank` (JSON records, baseline first then best first) and `rys report`, both exit 0."""
    for folder in folders:
        final = statuses(folder)
        assert all(s in FINAL for s, _ in final.values()), final
        assert all(reason for s, reason in final.values() if s != "ok"), final  # every non-ok says why
    r = CliRunner().invoke(cli, ["rank", *map(str, folders), "--format", "json"])
    assert r.exit_code == 0, r.output
    out = folders[0].parent / "REPORT.md"
    rep = CliRunner().invoke(cli, ["report", *map(str, folders), "-o", str(out)])
    assert rep.exit_code == 0, rep.output
    assert "## Ranking" in out.read_text()
    return json.loads(r.stdout)


def holdout_counts(records: list[dict], group: str = "math") -> dict[str, int]:
    """Hold-out items per candidate that has any."""
    return {r["candidate"]: r[f"holdout_{group}_n"] for r in records if r.get(f"holdout_{group}_n")}


def test_holdout(stand_in, tmp_path):
    _, sweep = stand_in
    sweep(tmp_path / "s", "--blocks", ",".join(BLOCKS), "--holdout-top", "2", holdout=3)
    records = rank_and_report(tmp_path / "s")
    assert [r["candidate"] for r in records] == [BASELINE] + BY_RANK
    assert all(r["status"] == "ok" and r["math_n"] == 4 for r in records)
    assert holdout_counts(records) == {BASELINE: 3, "0-1": 3, "2-3": 3}  # the top two and the baseline
    held = {r["candidate"]: r["holdout_math_delta"] for r in records if r["candidate"] in ("0-1", "2-3")}
    assert held["0-1"] > held["2-3"] > 0  # misses 0.05 and 0.25 against 0.35


def test_a_failed_remeasurement_keeps_the_search_scores_and_a_rerun_retries_it(stand_in, tmp_path, monkeypatch):
    _, sweep = stand_in
    enter, broken = StandIn.__enter__, [True]

    def second_start_of_0_1_fails(self):
        if broken[0] and self.candidate == "0-1" and "0-1" in StandIn.served:
            raise RysError("llama-server exited (status 1) while loading")
        return enter(self)

    monkeypatch.setattr(StandIn, "__enter__", second_start_of_0_1_fails)
    args = (tmp_path / "s", "--blocks", ",".join(BLOCKS), "--holdout-top", "2")
    sweep(*args, holdout=3)
    assert statuses(tmp_path / "s")["0-1"] == (
        "ok", "hold-out re-measurement failed: llama-server exited (status 1) while loading")
    records = rank_and_report(tmp_path / "s")
    assert [r["candidate"] for r in records] == [BASELINE] + BY_RANK
    assert holdout_counts(records) == {BASELINE: 3, "2-3": 3}
    broken[0] = False
    sweep(*args, holdout=3)
    assert statuses(tmp_path / "s")["0-1"] == ("ok", None)
    assert holdout_counts(rank_and_report(tmp_path / "s")) == {BASELINE: 3, "0-1": 3, "2-3": 3}


def test_holdout_on_gsm8k_as_reported(stand_in, tmp_path):
    """The command of the report: --block 4 --stride 2 --suite gsm8k=... --limit 8 --holdout 8."""
    if not DATASETS.is_dir():
        pytest.skip(f"data sets not found at {DATASETS}")
    _, sweep = stand_in
    suite = f"gsm8k={DATASETS}/gsm8k/train.jsonl"
    sweep(tmp_path / "s", "--block", "4", "--stride", "2", suite=suite, limit=8, holdout=8)
    records = rank_and_report(tmp_path / "s")
    assert sorted(r["candidate"] for r in records) == sorted([BASELINE, "0-3", "2-5", "4-7"])
    assert {r["status"] for r in records} == {"ok"}
    assert holdout_counts(records, "gsm8k") == {BASELINE: 8, "0-3": 8, "2-5": 8, "4-7": 8}  # --holdout-top 3


def test_halving(stand_in, tmp_path):
    _, sweep = stand_in
    sweep(tmp_path / "s", "--blocks", ",".join(BLOCKS), "--halving", limit=8)
    records = rank_and_report(tmp_path / "s")
    assert [r["candidate"] for r in records] == [BASELINE] + BY_RANK
    # rungs of 2 and 4 items; the survivor (the best) and the baseline get all 8
    assert {r["candidate"]: r["math_n"] for r in records} == {BASELINE: 8, "0-1": 8, "2-3": 4, "4-5": 2, "6-7": 2}


def test_halving_with_holdout(stand_in, tmp_path):
    _, sweep = stand_in
    sweep(tmp_path / "s", "--blocks", ",".join(BLOCKS), "--halving", "--holdout-top", "1", limit=8, holdout=2)
    records = rank_and_report(tmp_path / "s")
    assert [r["candidate"] for r in records] == [BASELINE] + BY_RANK
    assert {r["status"] for r in records} == {"ok"}
    assert holdout_counts(records) == {BASELINE: 2, "0-1": 2}


def test_kl_prefilter(stand_in, tmp_path):
    _, sweep = stand_in
    sweep(tmp_path / "s", "--blocks", ",".join(BLOCKS), "--prefilter", "kl", "--kl-threshold", str(KL))
    with Store(tmp_path / "s") as store:
        kl = store.get_meta("kl")
    records = rank_and_report(tmp_path / "s")
    status = {r["candidate"]: r["status"] for r in records}
    assert set(kl) == set(BLOCKS) and status[BASELINE] == "ok"
    assert {c for c, s in status.items() if s == "pruned"} == {c for c, v in kl.items() if v > KL}
    assert {c for c, s in status.items() if s == "ok"} == {BASELINE} | {c for c, v in kl.items() if v <= KL}
    assert [r["candidate"] for r in records] == [BASELINE, "2-3", "4-5", "6-7", "0-1"]  # 0-1 pruned
    assert StandIn.served.count(BASELINE) == 1 and not set(StandIn.served) & {c for c, v in kl.items() if v > KL}


def test_kl_prefilter_with_holdout(stand_in, tmp_path):
    _, sweep = stand_in
    sweep(tmp_path / "s", "--blocks", "0-1,2-3", "--prefilter", "kl", "--kl-threshold", str(KL),
          "--holdout-top", "1", holdout=2)
    records = rank_and_report(tmp_path / "s")
    assert [(r["candidate"], r["status"]) for r in records] == [(BASELINE, "ok"), ("2-3", "ok"), ("0-1", "pruned")]
    assert holdout_counts(records) == {BASELINE: 2, "2-3": 2}  # the best that was not pruned


@pytest.mark.parametrize("holdout", [0, 2])
def test_shards_merged_by_rank(stand_in, tmp_path, holdout):
    _, sweep = stand_in
    folders = [tmp_path / "s1", tmp_path / "s2"]
    for k, folder in enumerate(folders, 1):
        sweep(folder, "--blocks", ",".join(BLOCKS), "--shard", f"{k}/2", "--holdout-top", "1", holdout=holdout)
    assert set(statuses(folders[0])) == {BASELINE, "0-1", "4-5"}
    records = rank_and_report(*folders)
    assert [r["candidate"] for r in records] == [BASELINE] + BY_RANK
    if holdout:  # each shard re-measures its own best: 0-1 and 2-3
        assert holdout_counts(records) == {BASELINE: 2, "0-1": 2, "2-3": 2}
