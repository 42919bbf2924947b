"""Real runs on SmolLM2-135M-Instruct served by llama-server (slow)."""

import json
import re

import pytest
from click.testing import CliRunner

from rys.cli import cli

pytestmark = [pytest.mark.slow, pytest.mark.server]


POOLS = {"math": ["math.arith", "math.word"],
         "reasoning": ["reasoning.causal", "reasoning.date", "reasoning.logic", "reasoning.navigation",
                       "reasoning.gsm8k"]}
EXACT = POOLS["reasoning"]  # scored 1 when the extracted answer is the reference, else 0


def test_probe_smollm2_answers_every_suite(smollm2, tmp_path):
    """Every summary agrees with the rows it came from, and every row with the
    completion it came from: what a real model writes goes through unchanged."""
    out = tmp_path / "rows.jsonl"
    r = CliRunner().invoke(cli, ["probe", str(smollm2), "--suite", "math,eq,reasoning", "--limit", "2",
                                 "--json", "--timeout", "300", "--out", str(out)])
    assert r.exit_code == 0, r.output
    summaries = {s["suite"]: s for s in json.loads(r.stdout)}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(summaries) == {"math", "reasoning", *POOLS["math"], *POOLS["reasoning"], "eq"}
    for name, s in summaries.items():
        mine = [x for x in rows if x["suite"] in POOLS.get(name, [name])]
        assert s["n"] == len(mine) == (4 if name == "math" else 10 if name == "reasoning" else 2), name
        assert s["parse_rate"] == sum(x["parseable"] for x in mine) / len(mine), name
        if name != "eq":  # EQ-Bench's score is not a mean of item scores
            assert s["score"] == pytest.approx(sum(x["score"] for x in mine) / len(mine), abs=1e-12), name
        assert s["ci_low"] <= s["score"] <= s["ci_high"], name
    for x in rows:
        assert x["error"] is None and x["completion"] and x["completion_tokens"] > 0, x
        if x["suite"] in EXACT:
            assert x["score"] == float(x["parseable"] and x["extracted"] == x["reference"]), x
        if x["parseable"] and isinstance(x["extracted"], int):  # a number the model wrote
            assert str(abs(x["extracted"])) in re.sub(r"[,\s]", "", x["completion"]), x
    assert summaries["math"]["parse_rate"] > 0.5  # a real model writes numbers


def test_demo_sweep_rank_and_report(smollm2, tmp_path):
    """The README's demo, smaller: block 8 stride 8 on SmolLM2, then rank and report."""
    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["sweep", str(smollm2), "--block", "8", "--stride", "8", "--suite",
                                 "math.arith,reasoning.navigation", "--limit", "3", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["rank", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    records = json.loads(r.stdout)
    assert [x["candidate"] for x in records][0] == "baseline"
    assert sorted(x["candidate"] for x in records[1:]) == ["0-7", "16-23", "8-15"]
    assert all(x["status"] == "ok" for x in records)
    assert {x["layers_added"] for x in records[1:]} == {8}
    r = CliRunner().invoke(cli, ["report", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "report.md").read_text()
    assert "rys build" in text and "rys sweep" in text
