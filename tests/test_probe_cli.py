"""`rys probe` through click's CliRunner: exit codes and exact output."""

import json
import socket

import pytest
from click.testing import CliRunner
from support.fake_openai import responder_for

from rys.search import probing
from rys.cli import cli
from rys.search.suites import resolve

SPEC = "math.arith,eq,reasoning.date"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(probing, "clock", lambda: 0.0)  # seconds print as 0.0s


def probe(*args):
    return CliRunner().invoke(cli, ["probe", *args])


def answering(fake, kind="right", spec=SPEC, mode="generate", limit=4):
    fake.responder = responder_for(resolve(spec, limit=limit, seed=0), mode, kind)
    return fake


@pytest.mark.parametrize("kind, spec, limit, expected", [
    ("right", SPEC, 4,
     "math.arith             1.000 [1.000, 1.000]  n=4  parsed 100%  tokens 20  0.0s\n"
     "eq                     100.0 [100.0, 100.0]  n=4  parsed 100%  tokens 20  0.0s\n"
     "reasoning.date         1.000 [1.000, 1.000]  n=4  parsed 100%  tokens 20  0.0s\n"),
    ("garbage", "math", 2,  # an alias adds a pooled line after its members
     "math.arith             0.000 [0.000, 0.000]  n=2  parsed 0%  tokens 10  0.0s\n"
     "math.word              0.000 [0.000, 0.000]  n=2  parsed 0%  tokens 10  0.0s\n"
     "math                   0.000 [0.000, 0.000]  n=4  parsed 0%  tokens 20  0.0s\n"),
])
def test_one_line_per_suite(fake_openai, kind, spec, limit, expected):
    answering(fake_openai, kind, spec=spec, limit=limit)
    result = probe("--url", fake_openai.url, "--suite", spec, "--limit", str(limit))
    assert result.exit_code == 0, result.output
    assert result.stdout == expected


def test_choice_mode_reports_the_probability_of_the_right_option(fake_openai):
    answering(fake_openai, spec="reasoning.navigation", mode="choice", limit=3)
    result = probe("--url", fake_openai.url, "--suite", "reasoning.navigation", "--limit", "3", "--mode", "choice")
    assert result.exit_code == 0, result.output
    # top logprobs -0.2 for the right label, -3.0 for the other: p = 1 / (1 + e^-2.8)
    assert result.stdout == (
        "reasoning.navigation   1.000 [1.000, 1.000]  n=3  parsed 100%  tokens 15  0.0s  p(correct) 0.943\n"
    )


def test_json(fake_openai):
    answering(fake_openai)
    result = probe("--url", fake_openai.url, "--suite", SPEC, "--limit", "4", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"suite": "math.arith", "score": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 4, "parse_rate": 1.0},
        {"suite": "eq", "score": 100.0, "ci_low": 100.0, "ci_high": 100.0, "n": 4, "parse_rate": 1.0},
        {"suite": "reasoning.date", "score": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 4, "parse_rate": 1.0},
    ]


def test_out_writes_one_row_per_item(fake_openai, tmp_path):
    answering(fake_openai, "wrong")
    out = tmp_path / "runs" / "rows.jsonl"
    result = probe("--url", fake_openai.url, "--suite", SPEC, "--limit", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and [r["suite"] for r in rows] == ["math.arith"] * 4 + ["eq"] * 4 + ["reasoning.date"] * 4
    assert all(r["completion"] and r["parseable"] and r["error"] is None for r in rows)
    assert sorted(p.name for p in out.parent.iterdir()) == ["rows.jsonl"]  # no temporary file left


def test_one_failed_item_is_shown(fake_openai):
    sel = resolve("reasoning.date", limit=4)
    right = responder_for(sel, "generate", "right")
    first = sel.suites[0].items[0].prompt
    fake_openai.responder = lambda p: (500, "boom") if first in p["messages"][-1]["content"] else right(p)
    result = probe("--url", fake_openai.url, "--suite", "reasoning.date", "--limit", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("reasoning.date         0.750 [")
    assert result.stdout.endswith("  n=4  parsed 75%  tokens 15  0.0s  failed 1\n")


# --- errors: exit 1, one line, no traceback ---------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_error(result, message):
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output


def test_unreachable_url():
    url = f"http://127.0.0.1:{free_port()}"
    assert_error(probe("--url", url, "--suite", "math", "--limit", "2"),
                 f"cannot reach {url}: is a server running there?")


def test_server_error_on_every_item(fake_openai):
    fake_openai.responder = lambda p: (500, '{"error": "model not loaded"}')
    assert_error(probe("--url", fake_openai.url, "--suite", "math.arith", "--limit", "3"),
                 f'every request to {fake_openai.url} failed: server error 500: {{"error": "model not loaded"}}')


def test_server_error_stops_after_five(fake_openai):
    fake_openai.responder = lambda p: (503, "loading")
    assert_error(probe("--url", fake_openai.url, "--suite", "math", "--limit", "20", "--concurrency", "1"),
                 f"the first 5 requests to {fake_openai.url} all failed: server error 503: loading")


def test_timeout(fake_openai):
    fake_openai.responder = lambda p: fake_openai.release.wait(10) and "late"
    assert_error(probe("--url", fake_openai.url, "--suite", "math.arith", "--limit", "2", "--timeout", "0.3",
                       "--concurrency", "2"),
                 f"every request to {fake_openai.url} failed: no answer within 0.3s")


def test_unknown_suite():
    assert_error(probe("--url", "http://127.0.0.1:9", "--suite", "math,poetry"),
                 "unknown suite 'poetry'; choose from math, eq, reasoning, math.arith, math.word, "
                 "reasoning.causal, reasoning.date, reasoning.logic, reasoning.navigation, reasoning.gsm8k, "
                 "or gsm8k=FILE.jsonl, bbh=FILE.json, eqbench=FILE.json")


def test_missing_data_file():
    assert_error(probe("--url", "http://127.0.0.1:9", "--suite", "gsm8k=/no/such/train.jsonl"),
                 "gsm8k file not found: /no/such/train.jsonl")


def test_bad_url():
    assert_error(probe("--url", "localhost:8080", "--suite", "math"),
                 "--url must start with http:// or https://, got 'localhost:8080'")


def test_unwritable_out(fake_openai, tmp_path):
    answering(fake_openai, spec="math.arith", limit=1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = probe("--url", fake_openai.url, "--suite", "math.arith", "--limit", "1", "--out", str(blocker / "rows.jsonl"))
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: cannot write {blocker / 'rows.jsonl'}: ")
    assert "Traceback" not in result.output
    assert fake_openai.requests == []  # found out before asking anything


def test_help_shows_examples():
    result = probe("--help")
    assert result.exit_code == 0 and "rys probe --url http://127.0.0.1:8080 --suite math,eq,reasoning" in result.stdout
