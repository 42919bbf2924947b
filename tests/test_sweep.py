"""rys sweep end to end with the real llama-server."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from support import tiny_models
from support.processes import default_sigint
from rys.search import scratch
from rys.cli import cli
from rys.core.errors import RysError
from rys.search.results import Store
from rys.search.candidates import block_specs, shard_of
from rys.search.results import BASELINE
from rys.search.sweep import Sweep, SweepConfig

RYS = [sys.executable, "-m", "rys.cli"]


def test_block_specs_match_the_seed_passes():
    assert block_specs(32, 8, 4) == ["0-7", "4-11", "8-15", "12-19", "16-23", "20-27", "24-31"]
    second = block_specs(32, 4, 1, start=8, end=32)
    assert second[0] == "8-11" and second[-1] == "28-31" and len(second) == 21
    assert block_specs(10, 3, 3) == ["0-2", "3-5", "6-8"]
    with pytest.raises(RysError, match="no block of 9 layers"):
        block_specs(8, 9, 1)
    with pytest.raises(RysError, match="do not fit"):
        block_specs(8, 2, 1, start=6, end=12)


def test_shards_partition_the_candidates():
    names = [f"{i}-{i + 3}" for i in range(10)]
    parts = [shard_of(names, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(names) and all(parts)
    assert parts[0] == ["0-3", "3-6", "6-9", "9-12"]
    with pytest.raises(RysError, match="K/N"):
        shard_of(names, "2")
    with pytest.raises(RysError, match="between 1 and N"):
        shard_of(names, "4/3")


def test_candidate_list_is_exact_with_skipped_blocks(qwen8, tmp_path):
    cfg = SweepConfig(model=str(qwen8), blocks="0-3,1-3,4-7,2-4", layout="interval", suite="math.arith", limit=1)
    sw = Sweep(cfg, tmp_path / "s")
    got = [(p.name, p.layers_added, p.skip_reason is not None) for p in sw.planned]
    assert got == [(BASELINE, 0, False), ("0-3", 4, False), ("1-3", 3, True), ("4-7", 4, False), ("2-4", 3, True)]
    reason = next(p.skip_reason for p in sw.planned if p.name == "1-3")
    assert "nearest blocks that keep it" in reason


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A full small sweep on a tiny hybrid model: 2 scored candidates, 1 skipped."""
    d = tmp_path_factory.mktemp("sweep")
    model = tiny_models.write_model(d / "hy.gguf", "qwen35", 8)
    out = d / "out"
    r = CliRunner().invoke(cli, ["sweep", str(model), "--blocks", "0-3,1-3,4-7", "--layout", "interval",
                                 "--suite", "math.arith,reasoning.navigation", "--limit", "3", "--concurrency", "2",
                                 "--threads", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return model, out, r


@pytest.mark.server
def test_tiny_sweep_scores_every_candidate(tiny_sweep):
    model, out, r = tiny_sweep
    assert r.stdout.strip() == str(out)
    with Store(out) as store:
        status = {c.candidate: c.status for c in store.candidates()}
        assert status == {BASELINE: "ok", "0-3": "ok", "1-3": "skipped", "4-7": "ok"}
        for name in (BASELINE, "0-3", "4-7"):
            rows = store.item_rows(name)
            assert len(rows) == 6 and {r["suite"] for r in rows} == {"math.arith", "reasoning.navigation"}
            assert all(r["error"] is None and r["completion"] is not None for r in rows)
        server = store.candidate("0-3").server
        assert server and server.get("total_slots") == 2
    assert (out / "logs" / "0-3.log").is_file()
    assert not list(out.glob("**/*.gguf"))  # candidates deleted after scoring


@pytest.mark.server
def test_rerun_recomputes_nothing(tiny_sweep):
    model, out, _ = tiny_sweep
    before = sqlite3.connect(out / "results.sqlite").execute("SELECT candidate, suite, item_id, row FROM items").fetchall()
    r = CliRunner().invoke(cli, ["sweep", str(model), "--blocks", "0-3,1-3,4-7", "--layout", "interval",
                                 "--suite", "math.arith,reasoning.navigation", "--limit", "3", "--concurrency", "2",
                                 "--threads", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    after = sqlite3.connect(out / "results.sqlite").execute("SELECT candidate, suite, item_id, row FROM items").fetchall()
    assert sorted(before) == sorted(after)  # same rows, same raw completions and latencies


@pytest.mark.server
def test_changed_scoring_options_refuse_to_resume(tiny_sweep):
    model, out, _ = tiny_sweep
    r = CliRunner().invoke(cli, ["sweep", str(model), "--blocks", "0-3", "--suite", "math.arith", "--limit", "5",
                                 "--out", str(out), "-q"])
    assert r.exit_code == 1
    assert "scored differently" in r.stderr and "--limit 3 -> 5" in r.stderr
    assert "--concurrency 2 -> 4" in r.stderr  # the default; slots change greedy outputs


@pytest.mark.server
def test_a_candidate_that_cannot_load_is_failed_and_the_sweep_goes_on(qwen8, tmp_path, monkeypatch):
    broken = tiny_models.write_model(tmp_path / "broken.gguf", "qwen35", 8, layer_path=[0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7])
    real = Sweep.file_for

    def file_for(self, p, scratch):
        return broken if p.name == "0-3" else real(self, p, scratch)

    monkeypatch.setattr(Sweep, "file_for", file_for)
    cfg = SweepConfig(model=str(qwen8), blocks="0-3,4-7", suite="math.arith", limit=2, concurrency=1, threads=1)
    result = Sweep(cfg, tmp_path / "out").run()
    assert result.counts == {"ok": 2, "failed": 1}
    with Store(tmp_path / "out") as store:
        failed = store.candidate("0-3")
        assert failed.status == "failed" and "not found" in failed.reason
        assert store.candidate("4-7").status == "ok"


def _servers_for(path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"llama-server.*{path}"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_sweep_resumes_and_leaves_no_server(sig, tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "qwen35", 8)
    out = tmp_path / "out"
    # enough items that the sweep is still running when the signal arrives
    cmd = RYS + ["sweep", str(model), "--blocks", "0-3,4-7", "--suite", "math.arith", "--limit", "60",
                 "--concurrency", "1", "--threads", "1", "--out", str(out), "-q"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            n = sqlite3.connect(out / "results.sqlite", timeout=5).execute(
                "SELECT COUNT(*) FROM items WHERE candidate != 'baseline'").fetchone()[0]
        except sqlite3.Error:
            continue
        if n >= 2:
            break
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    time.sleep(1.0)
    assert _servers_for(tmp_path) == []
    db = sqlite3.connect(out / "results.sqlite")
    before = dict(((c, s, i), r) for c, s, i, r in db.execute("SELECT candidate, suite, item_id, row FROM items"))
    assert len(before) >= 2
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = dict(((c, s, i), r) for c, s, i, r in db.execute("SELECT candidate, suite, item_id, row FROM items"))
    assert len(after) == 3 * 60
    assert all(after[k] == v for k, v in before.items())  # nothing done before the kill was recomputed
    assert _servers_for(tmp_path) == []


def test_stale_scratch_folders_of_dead_sweeps_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"rys-{dead.pid}-abc"
    stale.mkdir()
    (stale / "big.gguf").write_bytes(b"x")
    mine = tmp_path / f"rys-{os.getpid()}-def"
    mine.mkdir()
    scratch._remove_stale(tmp_path)
    assert not stale.exists() and mine.exists()


def _tiny_cfg(model, **kw):
    base = dict(model=str(model), suite="math.arith", limit=4, concurrency=2, threads=1)
    return SweepConfig(**{**base, **kw})


@pytest.mark.server
def test_halving_gives_the_survivor_every_item_and_the_rest_fewer(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    cfg = _tiny_cfg(model, blocks="0-1,2-3,4-5,6-7", halving=True, limit=8)
    Sweep(cfg, tmp_path / "out").run()
    with Store(tmp_path / "out") as store:
        counts = {c.candidate: len(store.item_rows(c.candidate)) for c in store.candidates()}
    # 4 candidates, limit 8: rungs of 2 and 4 items, then the survivor gets all 8
    assert counts[BASELINE] == 8
    assert sorted(v for k, v in counts.items() if k != BASELINE) == [2, 2, 4, 8]


@pytest.mark.server
def test_kl_prefilter_prunes_and_reports(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    cfg = _tiny_cfg(model, blocks="0-1,6-7", prefilter="kl", kl_threshold=0.0, limit=2)
    result = Sweep(cfg, tmp_path / "out").run()
    assert result.counts == {"ok": 1, "pruned": 2}
    with Store(tmp_path / "out") as store:
        pruned = [c for c in store.candidates() if c.status == "pruned"]
        assert all(c.reason.startswith("KL prefilter: ") and "> 0.0" in c.reason for c in pruned)
        kl = store.get_meta("kl")
        assert set(kl) == {"0-1", "6-7"} and all(v > 0 for v in kl.values())


@pytest.mark.server
def test_holdout_items_go_to_the_top_candidates_and_the_baseline(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    cfg = _tiny_cfg(model, blocks="0-1,2-3,4-5", holdout=2, holdout_top=1, limit=3)
    Sweep(cfg, tmp_path / "out").run()
    with Store(tmp_path / "out") as store:
        assert {c.status for c in store.candidates()} == {"ok"}  # re-measured ones too, in one run
        held = {}
        for r in store.item_rows():
            if r["stage"] == "holdout":
                held.setdefault(r["candidate"], set()).add(r["id"])
        search_ids = {r["id"] for r in store.item_rows(BASELINE) if r["stage"] == "search"}
    assert len(held) == 2 and BASELINE in held
    assert all(len(v) == 2 and not (v & search_ids) for v in held.values())


@pytest.mark.server
def test_shards_merge_into_one_ranking(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    for k in (1, 2):
        Sweep(_tiny_cfg(model, blocks="0-1,2-3,4-5", shard=f"{k}/2", limit=2), tmp_path / f"s{k}").run()
    r = CliRunner().invoke(cli, ["rank", str(tmp_path / "s1"), str(tmp_path / "s2"), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert sorted(x["candidate"] for x in json.loads(r.stdout)) == sorted([BASELINE, "0-1", "2-3", "4-5"])


@pytest.mark.server
def test_a_folder_from_before_a_scoring_key_existed_resumes(tiny_sweep):
    model, out, _ = tiny_sweep
    with Store(out) as store:
        old = store.get_meta("scoring")
        store.set_meta("scoring", {k: v for k, v in old.items() if k != "concurrency"})
    r = CliRunner().invoke(cli, ["sweep", str(model), "--blocks", "0-3,1-3,4-7", "--layout", "interval",
                                 "--suite", "math.arith,reasoning.navigation", "--limit", "3", "--concurrency", "2",
                                 "--threads", "1", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    with Store(out) as store:
        assert store.get_meta("scoring") == old  # recorded again, key included


@pytest.mark.server
def test_the_folder_records_the_group_of_every_suite(tiny_sweep):
    _, out, _ = tiny_sweep
    with Store(out) as store:
        assert store.get_meta("groups") == {"math.arith": "math", "reasoning.navigation": "reasoning"}
