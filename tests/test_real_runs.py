"""Real runs on SmolLM2-135M-Instruct served by llama-server (slow)."""

import json

import pytest
from click.testing import CliRunner

from rys.cli import cli

pytestmark = pytest.mark.slow


def test_probe_smollm2_answers_every_suite(smollm2):
    r = CliRunner().invoke(cli, ["probe", str(smollm2), "--suite", "math,eq,reasoning", "--limit", "2",
                                 "--json", "--timeout", "300"])
    assert r.exit_code == 0, r.output
    rows = {s["suite"]: s for s in json.loads(r.stdout)}
    expected = {"math.arith", "math.word", "eq", "reasoning.causal", "reasoning.date", "reasoning.logic",
                "reasoning.navigation", "reasoning.gsm8k", "math", "reasoning"}
    assert set(rows) == expected
    for name, s in rows.items():
        assert s["n"] == (4 if name == "math" else 10 if name == "reasoning" else 2)
        assert s["ci_low"] <= s["score"] <= s["ci_high"]
        assert 0 <= s["parse_rate"] <= 1
    assert 0 <= rows["reasoning"]["score"] <= 1 and 0 <= rows["math"]["score"] <= 1
    assert rows["math"]["parse_rate"] > 0.5  # a real model writes numbers


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
