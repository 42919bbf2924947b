"""`rys rank`: the ranking maths on synthetic result stores with known answers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from support import rank_data as rd
from rys.cli import cli
from rys.core.errors import RysError
from rys.search.bootstrap import paired_delta, resampled_scores
from rys.search.ranking import rank
from rys.search.stats import pareto_front
from rys.search.scorers import suite_score

GROUPS = ("math", "eq", "reasoning")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return rd.write_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def ranking(sweep):
    return rank([sweep])


def by_name(records):
    return {r["candidate"]: r for r in records}


def test_scores_and_deltas_by_hand(ranking):
    recs = by_name(ranking.to_records())
    base = recs["baseline"]
    for g in GROUPS:
        assert base[g] == pytest.approx(rd.SCORES["baseline"][g], abs=1e-12)
        assert (base[f"{g}_delta"], base[f"{g}_ci_low"], base[f"{g}_ci_high"]) == (0.0, 0.0, 0.0)
    assert (base["math_n"], base["eq_n"], base["reasoning_n"]) == (6, 3, 4)  # math pools arith and word
    for cand, deltas in rd.DELTAS.items():
        for g, d in deltas.items():
            assert recs[cand][f"{g}_delta"] == pytest.approx(d, abs=1e-12), (cand, g)
    assert recs["0-3"]["eq"] == pytest.approx(70.0, abs=1e-12)


def test_every_item_higher_gives_an_interval_above_zero(ranking):
    recs = by_name(ranking.to_records())
    up, down = recs["0-3"], recs["4-7"]
    assert up["math_ci_low"] > 0 and up["math_sig"] is True
    assert down["math_ci_high"] < 0 and down["math_sig"] is True
    # EQ: every item's revised answer is one point better, in every resample: exactly +10
    assert (up["eq_ci_low"], up["eq_ci_high"]) == pytest.approx((10.0, 10.0), abs=1e-9)
    assert up["eq_sig"] is True
    # reasoning 0-3 differs from baseline on one item of four: resamples without it give 0
    assert up["reasoning_ci_low"] == 0.0 and up["reasoning_sig"] is False


def test_a_copy_of_the_baseline_has_delta_zero_and_an_interval_around_it(ranking):
    same = by_name(ranking.to_records())["2-5"]
    for g in GROUPS:
        assert same[f"{g}_delta"] == 0.0
        assert same[f"{g}_ci_low"] <= 0.0 <= same[f"{g}_ci_high"]
        assert same[f"{g}_sig"] is False


def test_the_bootstrap_is_paired():
    # Items vary a lot, the candidate is better by 0.01 on every one: an unpaired
    # bootstrap would straddle zero, the paired one is exactly [0.01, 0.01].
    base = [rd.row("m", i, s, "partial") for i, s in enumerate(np.linspace(0, 0.9, 30))]
    cand = [{**b, "score": b["score"] + 0.01} for b in base]
    delta, lo, hi = paired_delta("partial", cand, base, [0])
    assert (delta, lo, hi) == pytest.approx((0.01, 0.01, 0.01), abs=1e-12)


def test_the_interval_matches_the_normal_approximation():
    # Statistical check (not golden): 400 items, per-item differences with sd 0.3;
    # the 95% interval of the mean difference is about +-1.96 * 0.3 / 20.
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 400)
    diff = rng.normal(0.05, 0.3, 400)
    cand = [rd.row("m", i, b + d, "partial") for i, (b, d) in enumerate(zip(base, diff))]
    delta, lo, hi = paired_delta("partial", cand, [rd.row("m", i, b, "partial") for i, b in enumerate(base)], [0],
                                 n_boot=4000)
    half = 1.96 * diff.std() / np.sqrt(400)
    assert delta == pytest.approx(diff.mean(), abs=1e-12)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.08)
    assert (lo + hi) / 2 == pytest.approx(delta, abs=0.1 * half)


def test_eq_delta_follows_eqbench_rules():
    # EQ-Bench reports the revised pass only when at least 95% as many revised
    # answers parse: the candidate loses half its revised answers, so its score
    # is the first pass (mean 5 -> 50) against the baseline's revised 60.
    base = [rd.eq_row(i, 5, 6) for i in range(4)]
    cand = [rd.eq_row(i, 5, 7 if i % 2 else None) for i in range(4)]
    assert paired_delta("eqbench", cand, base, [0])[0] == pytest.approx(-10.0, abs=1e-12)


def test_eq_interval_rescores_each_resample():
    # Revised answers worse than the first pass: EQ-Bench keeps the first pass
    # (60 in every resample), while the item scores (10 x revised: 20..50) vary.
    # Re-scoring each resample gives exactly [0, 0]; averaging item scores would not.
    base = [rd.eq_row(i, 5, 6) for i in range(4)]
    cand = [rd.eq_row(i, 6, r) for i, r in enumerate([2, 3, 4, 5])]
    assert paired_delta("eqbench", cand, base, [0]) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


def test_vectorised_eq_scores_equal_suite_score():
    # rank scores EQ resamples all at once; every one must equal suite_score on that resample.
    rng = np.random.default_rng(3)
    pick = lambda p: [None if rng.uniform() < p else float(x) for x in rng.uniform(0, 10, 12)]
    cases = [[rd.eq_row(i, f, r) for i, (f, r) in enumerate(zip(pick(pf), pick(pr)))]
             for pf, pr in [(0, 0), (0.1, 0.1), (0, 0.5), (0.5, 0), (1, 0.3), (0.3, 1), (1, 1)]]
    cases.append([rd.eq_row(i, f, r) for i, (f, r) in enumerate([(5, 6), (7, 6), (4, 4), (6, None)])])  # ties
    for rows in cases:
        idx = rng.integers(0, len(rows), (300, len(rows)))
        want = [suite_score("eqbench", [rows[i] for i in ix])[0] for ix in idx]
        np.testing.assert_allclose(resampled_scores("eqbench", rows, idx), want, rtol=0, atol=1e-12)


def test_results_are_reproducible_and_seeded(sweep, ranking):
    assert rank([sweep]).to_records() == ranking.to_records()
    other = rank([sweep], seed=1).to_records()
    pick = lambda recs, end: [r[k] for r in recs for k in r if k.endswith(end)]
    assert pick(other, "_delta") == pick(ranking.to_records(), "_delta")
    assert pick(other, "_ci_low") + pick(other, "_ci_high") != \
        pick(ranking.to_records(), "_ci_low") + pick(ranking.to_records(), "_ci_high")


def test_reproducible_across_processes(sweep):
    # Python salts string hashes per process: nothing may depend on set order.
    def rank_json(hashseed):
        cmd = [sys.executable, "-c", "from rys.cli import main; main()", "rank", str(sweep), "--format", "json"]
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(REPO)}
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    assert rank_json("1") == rank_json("2")


def test_zscores_and_combined_against_numpy(ranking):
    recs = by_name(ranking.to_records())
    cands = list(rd.DELTAS)
    combined = np.zeros(len(cands))
    base_combined = 0.0
    for g in GROUPS:
        d = np.array([rd.DELTAS[c][g] for c in cands])
        z = (d - d.mean()) / d.std()  # population sd, baseline not in the statistics
        combined += z
        base_combined += (0 - d.mean()) / d.std()
        for c, zc in zip(cands, z):
            assert recs[c][f"{g}_z"] == pytest.approx(zc, abs=1e-9), (c, g)
    for c, total in zip(cands, combined):
        assert recs[c]["combined"] == pytest.approx(total, abs=1e-9)
    assert recs["baseline"]["combined"] == pytest.approx(base_combined, abs=1e-9)


def test_order_baseline_first_then_by_column_then_not_ranked(ranking, sweep):
    names = [r["candidate"] for r in ranking.to_records()]
    assert names == ["baseline", "0-3", "2-3", "2-5", "4-7", "6-7", "3-4", "1-2"]
    assert [r["rank"] for r in ranking.to_records()] == [None, 1, 2, 3, 4, None, None, None]
    by_eq = [r["candidate"] for r in rank([sweep], by="eq").to_records()]
    # eq deltas: 0-3 +10; 2-3 and 2-5 0 (2-3 first: fewer layers); 4-7 -10
    assert by_eq[:5] == ["baseline", "0-3", "2-3", "2-5", "4-7"]


def test_pareto_front_on_a_small_table():
    value = pd.Series({"baseline": -1.0, "A": 1.0, "F": 1.0, "B": 0.5, "C": 2.0, "D": 2.0, "E": 3.0, "G": np.nan})
    layers = pd.Series({"baseline": 0, "A": 2, "F": 2, "B": 4, "C": 4, "D": 8, "E": 8, "G": 1})
    # B is beaten by A (more value, fewer layers), D by C (same value, fewer layers);
    # A and F tie, neither beats the other; G has no value
    assert pareto_front(value, layers) == ["baseline", "A", "F", "C", "E"]


def test_pareto_in_the_ranking(sweep, ranking):
    assert ranking.pareto == ["baseline", "2-3", "0-3"]
    assert [r["candidate"] for r in ranking.to_records() if r["pareto"]] == ["baseline", "0-3", "2-3"]
    # by eq: 2-3 only ties the baseline's delta 0 with more layers
    assert rank([sweep], by="eq").pareto == ["baseline", "0-3"]


def test_best_per_group(ranking):
    # reasoning: 0-3 and 2-3 tie at +0.25; fewer layers wins
    assert ranking.best == {"math": "0-3", "eq": "0-3", "reasoning": "2-3"}


def test_not_measured_candidates_are_listed_with_reasons(ranking):
    recs = by_name(ranking.to_records())
    for name, (status, reason) in rd.UNMEASURED.items():
        assert (recs[name]["status"], recs[name]["reason"], recs[name]["rank"]) == (status, reason, None)
        assert recs[name]["combined"] is None and recs[name]["layers_added"] == 2


def test_shards_merge_to_the_single_folder_ranking(tmp_path, ranking):
    a = rd.write_sweep(tmp_path / "a", ["baseline", "0-3", "2-5"], ["6-7"], config={**rd.CONFIG, "shard": "1/2"})
    b = rd.write_sweep(tmp_path / "b", ["baseline", "4-7", "2-3"], ["1-2", "3-4"],
                       config={**rd.CONFIG, "shard": "2/2", "out": "elsewhere"},
                       model={**rd.MODEL, "path": "/other/machine/tiny.gguf"})
    merged = rank([a, b])
    assert merged.to_records() == ranking.to_records()
    assert rank([b, a]).to_records() == ranking.to_records()
    assert merged.notes == []


def test_one_candidate_split_over_two_folders_is_merged(tmp_path, ranking):
    rows = rd.rows_of("0-3")
    with rd.new_store(tmp_path / "a") as s:
        rd.add(s, "baseline")
        rd.add(s, "0-3", rows[:3])
    with rd.new_store(tmp_path / "b") as s:
        rd.add(s, "0-3", rows[3:])
        for name in ("2-5", "4-7", "2-3"):
            rd.add(s, name)
        rd.add_unmeasured(s)
    assert rank([tmp_path / "a", tmp_path / "b"]).to_records() == ranking.to_records()


def test_conflicting_duplicate_items_keep_the_first_folder_and_say_so(tmp_path):
    rd.write_sweep(tmp_path / "a", unmeasured=[])
    with rd.new_store(tmp_path / "b") as s:
        rows = rd.rows_of("baseline")
        rows[0] = {**rows[0], "score": 0.9}  # arith item 0: 0.2 in folder a
        rd.add(s, "baseline", rows)
    merged = rank([tmp_path / "a", tmp_path / "b"])
    assert merged.notes == ["1 items were scored differently in two folders; the first folder's score is used"]
    assert merged.to_records() == rank([tmp_path / "a"]).to_records()


@pytest.mark.parametrize("model, config, message", [
    ({**rd.MODEL, "header_sha256": "ff00"}, rd.CONFIG, "hold different models (header_sha256: 'ab12' vs 'ff00')"),
    (rd.MODEL, {**rd.CONFIG, "limit": 8}, "were measured differently (--limit 4 vs 8); rank them separately"),
    (rd.MODEL, {**rd.CONFIG, "suite": "math"}, "were measured differently (--suite 'math,eq,reasoning' vs 'math')"),
    # a folder written before the key existed had the default (4 slots, EQ without revision)
    (rd.MODEL, {**rd.CONFIG, "concurrency": 1}, "were measured differently (--concurrency 4 vs 1)"),
    (rd.MODEL, {**rd.CONFIG, "eq_revise": True}, "were measured differently (--eq-revise False vs True)"),
])
def test_incomparable_folders_are_refused(tmp_path, model, config, message):
    a = rd.write_sweep(tmp_path / "a", ["baseline", "0-3"], [])
    b = rd.write_sweep(tmp_path / "b", ["baseline", "2-5"], [], model=model, config=config)
    with pytest.raises(RysError, match=None) as e:
        rank([a, b])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_same_candidate_with_different_layer_counts_is_refused(tmp_path):
    a = rd.write_sweep(tmp_path / "a", ["baseline", "0-3"], [])
    with rd.new_store(tmp_path / "b") as s:
        s.put_candidate(rd.CandidateRecord("0-3", "ok", 3, "0-3", []))
    with pytest.raises(RysError, match="candidate 0-3 adds 4 layers in one folder and 3 in another"):
        rank([a, tmp_path / "b"])


def test_paired_items_only(tmp_path):
    # A candidate measured on the first two arith items only (as successive halving
    # leaves the weak ones): its delta compares it with the baseline on those two.
    with rd.new_store(tmp_path) as s:
        rd.add(s, "baseline")
        rd.add(s, "0-3", rd.rows_of("0-3")[:2])
    rec = by_name(rank([tmp_path], by="math").to_records())["0-3"]
    assert (rec["math"], rec["math_n"]) == (pytest.approx(0.4, abs=1e-12), 2)
    assert rec["math_delta"] == pytest.approx(0.1, abs=1e-12)
    assert rec["eq_delta"] is None and rec["combined"] is None


def test_holdout_items_are_ranked_apart(tmp_path, ranking):
    rd.write_sweep(tmp_path)
    with rd.Store(tmp_path) as s:
        for name, scores in (("baseline", [0.5, 0.5, 0.2]), ("0-3", [0.6, 0.4, 0.1])):
            for i, x in enumerate(scores):
                s.put_item(name, "holdout", rd.row("math.arith", f"h{i}", x, "partial"))
    r = rank([tmp_path])
    assert r.holdout == ["math"]
    recs = by_name(r.to_records())
    assert (recs["0-3"]["holdout_math_n"], recs["baseline"]["holdout_math"]) == (3, pytest.approx(0.4, abs=1e-12))
    assert recs["0-3"]["holdout_math_delta"] == pytest.approx(-0.1 / 3, abs=1e-12)
    assert recs["2-5"]["holdout_math_delta"] is None
    # the search-stage numbers do not see the hold-out items
    search_cols = [k for k in ranking.to_records()[0]]
    assert [{k: x[k] for k in search_cols} for x in r.to_records()] == ranking.to_records()


def test_suites_on_their_own(sweep):
    r = rank([sweep], suites=True)
    assert r.suites == ["math.arith", "math.word", "reasoning.date"]
    rec = by_name(r.to_records())["0-3"]
    assert rec["math.arith_delta"] == pytest.approx(0.6 / 4, abs=1e-12)
    assert rec["math.word_delta"] == pytest.approx(0.3 / 2, abs=1e-12)
    assert "math.arith_z" not in rec  # suites are shown, not summed into combined
    assert rank([sweep], by="math.word").best["math.word"] == "0-3"


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "no sweep results here (no results.sqlite)"),
    (lambda p: rd.new_store(p).close(), "the result store holds no candidates yet"),
    (lambda p: rd.write_sweep(p, ["0-3"], []), "no measured baseline in"),
])
def test_bad_folders(tmp_path, setup, message):
    folder = tmp_path / "sweep"
    setup(folder)
    with pytest.raises(RysError) as e:
        rank([folder])
    assert message in str(e.value)


def test_unknown_by(sweep):
    with pytest.raises(RysError, match=r"^cannot rank by 'speed': choose from combined, math, eq, reasoning$"):
        rank([sweep], by="speed")


# -- the CLI --------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, ["rank", *map(str, args)], catch_exceptions=False)


def test_cli_json_records(sweep, ranking):
    r = run(sweep, "--format", "json")
    assert r.exit_code == 0, r.output
    records = json.loads(r.stdout)
    assert records == json.loads(json.dumps(ranking.to_records()))
    keys = ["candidate", "status", "rank", "layers_added", "layers", "spec", "combined", "pareto"]
    for g in GROUPS:
        keys += [f"{g}{s}" for s in ("", "_n", "_parse", "_delta", "_ci_low", "_ci_high", "_sig", "_z")]
    assert list(records[0]) == keys + ["reason"]


def test_cli_table(sweep):
    r = run(sweep)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["#", "candidate", "+layers", "combined", "math", "delta", "math", "[95%", "CI]",
                                "eq", "delta", "eq", "[95%", "CI]", "reasoning", "delta", "reasoning", "[95%", "CI]"]
    # combined (checked against numpy above): baseline and its copy 2-5 -0.425, 0-3 +3.681
    assert lines[1].split() == ["baseline", "+0", "-0.425", "0.433", "n=6", "(reference)", "60.0", "n=3",
                                "(reference)", "0.500", "n=4", "(reference)"]
    top = lines[2].split()
    assert top[:7] == ["1", "0-3", "+4", "+3.681", "0.583", "n=6", "+0.150"]
    assert top[7].endswith("]*") and "+10.0 [+10.0,+10.0]*" in lines[2] and "+0.250 [+0.000,+0.750]" in lines[2]
    same = lines[4]
    assert same.split() == ["3", "2-5", "+4", "-0.425", "0.433", "n=6", "+0.000", "[+0.000,+0.000]", "60.0",
                            "n=3", "+0.0", "[+0.0,+0.0]", "0.500", "n=4", "+0.000", "[+0.000,+0.000]"]
    i = lines.index("not ranked:")
    assert lines[i + 1:i + 4] == ["  6-7  failed  llama-server exited: out of memory",
                                  "  3-4  pruned  KL 0.91 > 0.5 from baseline",
                                  "  1-2  skipped  block 1-2 changes layer kinds; --layout interval cannot express it"]
    assert "best reasoning: 2-3 (+2 layers)  +0.250 [+0.000,+0.750]" in lines
    assert "pareto front (combined vs layers added): baseline (+0, -0.425), 2-3 (+2, +1.111), 0-3 (+4, +3.681)" in lines


def test_cli_csv_and_md(sweep):
    csv = run(sweep, "--format", "csv")
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0].startswith("candidate,status,rank,layers_added,")
    assert len(csv.stdout.splitlines()) == 1 + 8
    md = run(sweep, "--format", "md", "--by", "eq")
    assert md.exit_code == 0
    assert md.stdout.splitlines()[2].startswith("|  | baseline | +0 |")
    assert "- best eq: 0-3 (+4 layers)  +10.0 [+10.0,+10.0]*" in md.stdout


@pytest.mark.parametrize("args, message", [
    (["nowhere"], "Error: nowhere: no such folder\n"),
    (["{sweep}", "--by", "speed"], "Error: cannot rank by 'speed': choose from combined, math, eq, reasoning\n"),
])
def test_cli_errors(sweep, monkeypatch, args, message):
    monkeypatch.chdir(sweep.parent)
    r = run(*[a.format(sweep=sweep) for a in args])
    assert (r.exit_code, r.output) == (1, message)


def test_cli_notes_go_to_stderr(tmp_path):
    with rd.new_store(tmp_path) as s:
        rd.add(s, "baseline")
        rd.add(s, "0-3")
    r = run(tmp_path, "--format", "json")
    assert r.exit_code == 0
    assert r.stderr == "".join(f"note: the candidates' {g} deltas do not vary, so their {g} z-scores are 0\n"
                               for g in GROUPS)
    assert json.loads(r.stdout)[1]["candidate"] == "0-3"


def test_candidates_scored_on_fewer_items_rank_after_the_rest(tmp_path, ranking):
    """Successive halving: 0-3, the best candidate on every group, was dropped
    after a few items. A few lucky items must not outrank the survivors."""
    with rd.new_store(tmp_path / "halved") as s:
        for name in ("baseline", "2-5", "4-7", "2-3"):
            rd.add(s, name)
        rows = rd.rows_of("0-3")
        rd.add(s, "0-3", [r for r in rows if r["id"] in ("0", "1")])  # two items per suite
    halved = rank([tmp_path / "halved"])
    order = [r["candidate"] for r in halved.to_records() if r["rank"] is not None]
    full_order = [r["candidate"] for r in ranking.to_records() if r["rank"] is not None and r["candidate"] != "0-3"]
    assert order == full_order + ["0-3"]
    recs = by_name(halved.to_records())
    assert recs["0-3"]["math_delta"] > recs["2-3"]["math_delta"]  # it looks better, and still ranks last
    assert "0-3" not in halved.best.values() and "0-3" not in halved.pareto
    assert halved.best == {"math": "2-3", "eq": "2-3", "reasoning": "2-3"}  # eq: 2-3 ties 2-5 with fewer layers
    assert any("1 candidates were scored on fewer search items" in n for n in halved.notes)
    assert not any("fewer search items" in n for n in ranking.notes)


def test_a_suite_pools_into_the_group_its_folder_recorded(tmp_path):
    """A user's suite file may put trivia.geo in group quiz: the sweep records
    that, and rank pools by it even where the file is not (old folders: by name)."""
    rows = {name: [rd.row("trivia.geo", i, s, "exact") for i, s in enumerate(scores)]
            for name, scores in {"baseline": [1, 0, 0, 1], "0-3": [1, 1, 0, 1]}.items()}
    for folder, groups in (("recorded", {"trivia.geo": "quiz"}), ("old", None)):
        with rd.new_store(tmp_path / folder) as store:
            if groups:
                store.set_meta("groups", groups)
            for name in rows:
                rd.add(store, name, rows[name])
    recorded = rank([tmp_path / "recorded"])
    assert recorded.groups == ["quiz"]
    assert recorded.table.set_index("candidate").at["0-3", "quiz_delta"] == pytest.approx(0.25)
    assert rank([tmp_path / "old"]).groups == ["trivia"]
