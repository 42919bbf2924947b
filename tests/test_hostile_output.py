"""No text a model writes, and no JSON a server sends, can crash a probe or a
sweep: extraction and scoring are total, every score is finite and inside its
suite's range, and rows stay storable (SQLite, JSON lines).

Property tests (hypothesis) run every extractor and scorer of every suite and
loader on arbitrary text mixed with the hostile classes of fake_openai; table
tests pin each crash seen in real sweeps; a chaos stand-in server answers
`rys probe` (both modes) and `rys sweep` with nothing but such replies."""

import json
import math
import re
import sqlite3
import time

import pytest
import requests
from click.testing import CliRunner
from support.fake_openai import chaos_responder, emotions_in, hostile_texts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.shared_data import DATASETS

from support import tiny_models
from rys.search import probing
from rys.cli import cli
from rys.cli.serving import write_jsonl_atomic
from rys.search.serving.client import ChatClient, ItemFailed, Reply
from rys.core.errors import RysError
from rys.search.probing import run_suites
from rys.search.extract import (answer_phrase, extract_label, extract_text, final_number, label_probs, numbers, parse_emotions, parse_number, parse_ratings, strip_think)
from rys.search.results import Store
from rys.search.scorers import (EQ_FLOOR, eq_item_score, eq_suite_score, numbers_equal, partial_credit, score_range, score_text, score_value, suite_score)
from rys.search.suites import resolve
from rys.search.suites.core import Item
from rys.search.suites.loaders import load_bbh, load_eqbench, load_gsm8k

EMOTIONS = ["Remorseful", "Indifferent", "Affectionate", "Annoyed"]
HOSTILE = hostile_texts(EMOTIONS)
BIG = "4" + "0" * 399  # 400 digits: no float holds it
HUGE = "9" * 5000  # past Python's 4,300-digit limit for int()
# Pieces that steer extractors down each of their paths.
FRAGMENTS = ["The answer is ", "answer: ", "####", "\\boxed{", "}", "<think>", "</think>", "First pass scores:",
             "Revised scores:", "Critique:", "\n", " ", ": ", ",", ".", "-", "\u2212", "$", " x 10^", "e", "1e999",
             "NaN", "inf", BIG, "7", "12", "0", "3/4", "\u0664\u0662", "\uff14", "**", "#", "(A)", "(B)", "A", "b",
             "Yes", "No", "True", "or", "\ud800", "\udfff", "\x00", "\x1b", "99999999999999999999"] + EMOTIONS
texts = st.one_of(
    st.text(),
    st.sampled_from(HOSTILE),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40).map("".join),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def full_spec() -> str:
    """Every built-in suite, and every loader when the shared data sets are there."""
    spec = "math,eq,reasoning"
    if DATASETS.is_dir():
        spec += (f",gsm8k={DATASETS}/gsm8k/train.jsonl,eqbench={DATASETS}/eqbench/eq_bench_v2_questions_171.json,"
                 f"bbh={DATASETS}/bbh/navigate.json,bbh={DATASETS}/bbh/multistep_arithmetic_two.json,"
                 f"bbh={DATASETS}/bbh/date_understanding.json")
    return spec


def every_kind_of_item() -> list:
    """Three items of every suite and loader, EQ asked both ways, plus one text-answer item."""
    items = []
    for revise in (False, True):
        for s in resolve(full_spec(), limit=3, eq_revise=revise).suites:
            if revise and s.scoring != "eqbench":
                continue
            items += [(s, it) for it in s.items]
    text = Item("t/0", "t", "q", "dyck ] )", None, "text", "exact", "1")
    return items + [(items[0][0], text)]


ITEMS = every_kind_of_item()


def assert_row_in_range(scoring: str, row: dict) -> None:
    """A scored row: score finite and in range (None only for unparseable EQ), JSON-clean."""
    lo, hi = score_range(scoring)
    if row["score"] is None:
        assert scoring == "eqbench" and not row["parseable"]
    else:
        assert isinstance(row["score"], float) and lo <= row["score"] <= hi, row["score"]
    assert isinstance(row["parseable"], bool)
    for key in ("first", "revised"):  # EQ-Bench item scores
        assert row.get(key) is None or EQ_FLOOR <= row[key] <= 10, row[key]
    json.dumps(row, allow_nan=False)  # no NaN or inf anywhere, no int past 4,300 digits


# --- table: the crashes seen, each fails on the code before this test --------------

def item(answer, reference, scoring="exact", choices=None):
    return Item("t/0", "t", "q", reference, choices, answer, scoring, "1")


@pytest.mark.parametrize("it, text", [
    (item("number", 72), f"The answer is {BIG}."),               # OverflowError in numbers_equal
    (item("number", 95879, "partial"), f"The answer is {BIG}."),
    (item("number", 72), HUGE),                                   # ValueError: int() of 5,000 digits
    (item("number", 95879, "partial"), HUGE),
    (item("number", 72), "The answer is 1e999."),                 # OverflowError in _to_number
    (item("number", 72), "about 9.6 x 10^999"),
    (item("emotions_revised", dict.fromkeys(EMOTIONS, 5), "eqbench"),
     "First pass scores:\n" + "\n".join(f"{e}: {BIG}" for e in EMOTIONS) + "\nRevised scores:\n"),  # -inf score
])
def test_named_crashes_score_zero(it, text):
    row = score_text(it, text)
    assert row["parseable"] is False and row["extracted"] is None
    assert row["score"] == (None if it.scoring == "eqbench" else 0.0)


def test_overflowing_numbers_compare_and_score():
    assert numbers_equal(int(BIG), 72) is False and numbers_equal(int(BIG), int(BIG)) is True
    assert numbers_equal(int(BIG), 1e308) is False and numbers_equal(72, float("nan")) is False
    # str() of 10**5000 raises; the score does not: 95879 padded to 5,001 digits, 4,996 of them padding
    assert partial_credit(95879, 10**5000) == pytest.approx((10000 / 95879) * (1 - 4996 / 5001))
    assert final_number(HUGE) is None and parse_number(BIG) is None and final_number("-1e999") is None


def test_absurd_ratings_stay_inside_the_eq_range():
    ref = dict(zip(EMOTIONS, (0, 6, 0, 7)))
    huge = "\n".join(f"{e}: 99999999999999999999" for e in EMOTIONS)
    row = score_text(item("emotions", ref, "eqbench"), huge)
    assert row["parseable"] and row["score"] == pytest.approx(10 * EQ_FLOOR)  # not -7e20
    assert eq_item_score(ref, dict.fromkeys(EMOTIONS, float("inf"))) == EQ_FLOOR
    assert eq_item_score(ref, dict.fromkeys(EMOTIONS, float("nan"))) == EQ_FLOOR


@pytest.mark.parametrize("top, expected", [
    ([(" A", 1000.0), ("B", -1.0)], {"A": 1.0, "B": math.exp(-1)}),   # exp(1000) overflowed
    ([(" A", float("nan")), ("B", -1.0)], {"B": math.exp(-1)}),        # NaN made every probability NaN
    ([(" A", float("inf"))], {}),
    ([(" A", -0.1)] * 5, {"A": math.exp(-0.1)}),                        # a token listed 5 times summed to 4.5
    ([(" A", -0.1), ("A", -0.1), ("(A", -0.1)], {"A": 1.0}),            # spellings sum, capped at 1
])
def test_absurd_logprobs(top, expected):
    assert label_probs(top, ("A", "B")) == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "1" + " " * 200_000 + "z",          # NUMBER's nested \s* was quadratic: minutes
    "Revised scores:" + "a" * 200_000,  # the emotion pair pattern started at every letter
    "\\boxed{" * 30_000,                # every unclosed box scanned to the end
    "First pass scores:" * 11_000,      # every heading scanned to the end for "Revised scores:"
])
def test_200_kb_stays_fast(text):
    start = time.perf_counter()
    for s, it in ITEMS:
        score_text(it, text)
    parse_emotions(text, EMOTIONS)
    assert time.perf_counter() - start < 5.0


def test_lone_surrogates_and_control_characters_are_written(tmp_path):
    row = {"suite": "t", "id": "t/0", "completion": "\ud800 The answer is \x00\x1b 7 \udfff", "score": 0.0}
    write_jsonl_atomic(tmp_path / "rows.jsonl", [row])  # UnicodeEncodeError before
    assert json.loads((tmp_path / "rows.jsonl").read_text(encoding="utf-8")) == row
    with Store(tmp_path / "sweep") as store:
        store.put_item("baseline", "search", row)
        assert store.item_rows("baseline")[0]["completion"] == row["completion"]


# --- client: any JSON body gives a Reply or ItemFailed -----------------------------

def response(body: bytes | str, status: int = 200) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp.encoding = status, "utf-8"
    resp._content = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return resp


def parse(body) -> Reply | None:
    try:
        reply = ChatClient._parse(response(body if isinstance(body, (str, bytes)) else json.dumps(body)), 0.1)
    except ItemFailed:
        return None
    assert isinstance(reply.text, str) and not any("\ud800" <= c <= "\udfff" for c in reply.text)
    reply.text.encode("utf-8")
    assert all(isinstance(n, int) and 0 <= n < 2**31 for n in (reply.prompt_tokens, reply.completion_tokens))
    assert all(isinstance(t, str) and isinstance(lp, float) for t, lp in reply.top_logprobs)
    return reply


@pytest.mark.parametrize("usage, counts", [
    ({"prompt_tokens": float("inf"), "completion_tokens": 1}, (0, 1)),   # OverflowError: int(inf)
    ({"prompt_tokens": float("nan")}, (0, 0)),                            # ValueError: int(nan)
    ({"prompt_tokens": "many", "completion_tokens": 3.0}, (0, 3)),        # ValueError: int("many")
    ({"prompt_tokens": [1], "completion_tokens": 2}, (0, 2)),             # TypeError: a good answer failed
    ("usage", (0, 0)),                                                    # AttributeError
])
def test_absurd_usage_counts_zero(usage, counts):
    body = {"choices": [{"message": {"content": "The answer is 4"}}], "usage": usage}
    reply = parse(body)
    assert reply is not None and reply.text == "The answer is 4"
    assert (reply.prompt_tokens, reply.completion_tokens) == counts


def test_broken_logprobs_read_as_none():
    body = {"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": None}]}}]}
    assert parse(body).top_logprobs == []  # TypeError before: one malformed field failed a good answer
    body["choices"][0]["logprobs"] = {"content": [{"top_logprobs": [{"token": "A", "logprob": 10**400}]}]}
    assert parse(json.dumps(body)).top_logprobs == [("A", math.inf)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
fields = st.one_of(json_values, texts)
chat_bodies = st.builds(
    lambda content, usage, top, extra: {
        "choices": [{"message": {"role": "assistant", "content": content},
                     "logprobs": {"content": [{"token": "x", "top_logprobs": top}]}}], "usage": usage, **extra},
    fields, st.one_of(json_values, st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens"]), fields)),
    st.one_of(json_values, st.lists(st.fixed_dictionaries({"token": fields, "logprob": fields}), max_size=6)),
    st.dictionaries(st.text(max_size=5), json_values, max_size=2))


@FAST
@given(st.one_of(json_values, chat_bodies))
def test_any_json_body_gives_a_reply_or_a_failed_item(body):
    reply = parse(body)  # parse() checks every field of a Reply it gets
    choices = body.get("choices") if isinstance(body, dict) else None
    content = choices[0]["message"]["content"] if isinstance(choices, list) and choices else None
    if isinstance(content, str):  # a chat completion with text: never refused, its text kept
        assert reply is not None
        assert reply.text == re.sub("[\ud800-\udfff]", "\ufffd", content)
    elif not isinstance(body, dict) or not isinstance(choices, list):
        assert reply is None  # not a chat completion: the item fails, nothing raises


# --- properties: every extractor and scorer of every suite ------------------------

@FAST
@given(texts)
def test_extractors_are_total(text):
    for value in (final_number(text), parse_number(text)):
        assert value is None or isinstance(value, int) or math.isfinite(value)
    assert all(isinstance(n, (int, float)) for n in numbers(text))
    for labels in (("A", "B", "C"), ("Yes", "No"), ("False", "True")):
        assert extract_label(text, labels) in labels + (None,)
    assert extract_text(text) is None or isinstance(extract_text(text), str)
    assert answer_phrase(text) is None or isinstance(answer_phrase(text), str)
    assert isinstance(strip_think(text), str)
    for parsed in (*parse_emotions(text, EMOTIONS), parse_ratings(text, EMOTIONS)):
        assert parsed is None or (set(parsed) == set(EMOTIONS) and all(math.isfinite(v) for v in parsed.values()))


@FAST
@given(texts, st.sampled_from(ITEMS))
def test_every_suite_scores_any_text_in_range(text, pair):
    suite, it = pair
    assert_row_in_range(it.scoring, score_text(it, text))


@FAST
@given(st.sampled_from(HOSTILE), st.sampled_from([s for s in ITEMS if s[1].answer.startswith("emotions")]))
def test_every_hostile_class_on_eq_items_built_for_them(text, pair):
    suite, it = pair
    text = hostile_texts(list(it.reference))[HOSTILE.index(text)]  # the item's own emotion names
    assert_row_in_range(it.scoring, score_text(it, text))


logprob_lists = st.lists(st.tuples(st.one_of(st.sampled_from([" A", "B", "(C", "Yes", " No", "True"]), st.text()),
                                   st.one_of(st.floats(), st.integers())), max_size=25)


@FAST
@given(logprob_lists, st.sampled_from([it for _, it in ITEMS if it.choices]))
def test_choice_mode_scores_any_logprobs_in_range(top, it):
    probs = label_probs(top, it.choices)
    assert set(probs) <= set(it.choices) and all(0 < p <= 1 for p in probs.values())
    picked = max(probs, key=probs.get) if probs else None
    assert 0.0 <= score_value(it, picked) <= 1.0


numbers_any = st.one_of(st.none(), st.integers(), st.floats(), st.integers(min_value=-10**400, max_value=10**400))


@FAST
@given(st.integers(min_value=-10**14, max_value=10**14), numbers_any)
def test_number_scorers_are_total(answer, estimate):
    assert 0.0 <= partial_credit(answer, estimate) <= 1.0
    assert numbers_equal(answer, estimate) in (True, False)


ratings = st.one_of(st.floats(min_value=0), st.integers(min_value=0, max_value=10**30))


@FAST
@given(st.lists(ratings, min_size=4, max_size=4), st.lists(st.one_of(st.none(), st.floats(EQ_FLOOR, 10)), max_size=20))
def test_eq_scorers_stay_in_range(values, items):
    score = eq_item_score(dict(zip(EMOTIONS, (0, 6, 0, 7))), dict(zip(EMOTIONS, values)))
    assert EQ_FLOOR <= score <= 10
    total, rate, _ = eq_suite_score(items, items[::-1])
    lo, hi = score_range("eqbench")
    assert lo <= total <= hi and 0.0 <= rate <= 1.0
    rows = [{"first": s, "revised": None, "score": None if s is None else 10 * s} for s in items]
    assert lo <= suite_score("eqbench", rows)[0] <= hi


# --- loaders: any file gives a suite or a RysError --------------------------------

file_texts = st.one_of(
    st.text(), json_values.map(json.dumps),
    st.builds(lambda rows: "\n".join(json.dumps(r) for r in rows),
              st.lists(st.fixed_dictionaries({"question": fields, "answer": st.one_of(fields, texts.map(
                  lambda t: "work\n#### " + t))}), max_size=3)),
    st.builds(lambda ex: json.dumps({"examples": ex}),
              st.lists(st.fixed_dictionaries({"input": fields, "target": fields}), max_size=3)),
    st.builds(lambda qs: json.dumps(dict(enumerate(qs))), st.lists(st.fixed_dictionaries({
        "prompt": st.one_of(fields, st.just("a\n First pass scores:\nCritique: <your critique here>\n[End of answer]")),
        "reference_answer_fullscale": st.dictionaries(st.sampled_from(
            [f"emotion{k}{s}" for k in range(1, 5) for s in ("", "_score")]), fields)}), max_size=3)),
    st.just('{"1": {"prompt": "p", "reference_answer_fullscale": {"emotion1_score": 1e999}}}'),
    st.just('{"examples": [{"input": "x", "target": ' + "9" * 5000 + "}]}"),
    st.just("[" * 100_000),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(file_texts, st.sampled_from([load_gsm8k, load_bbh, load_eqbench]), texts)
def test_loaders_give_a_suite_or_a_user_error(tmp_path, content, loader, text):
    path = tmp_path / "data.json"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    try:
        suite = loader(path)
    except RysError:
        return
    for it in suite.items:
        assert isinstance(it.prompt, str) and isinstance(suite.prefix + it.prompt + suite.suffix, str)
        assert_row_in_range(it.scoring, score_text(it, text))


def test_a_file_that_is_not_utf8_is_a_user_error(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"question": "\xff", "answer": "#### 1"}\n')
    with pytest.raises(RysError, match="is not UTF-8 text"):
        load_gsm8k(path)


# --- a scoring bug costs one item, not the run ---------------------------------------

def test_an_exception_while_scoring_fails_only_that_item(fake_openai, monkeypatch):
    sel = resolve("math.arith,eq", limit=4)
    fake_openai.responder = lambda p: "The answer is 5\n" + "\n".join(
        f"{e}: 5" for e in emotions_in(p["messages"][-1]["content"]))
    real = probing.score_text
    victims = {sel.suites[0].items[1].id, sel.suites[1].items[2].id}

    def flaky(it, text):
        if it.id in victims:
            raise ZeroDivisionError("a scorer bug")
        return real(it, text)

    monkeypatch.setattr(probing, "score_text", flaky)
    res = run_suites(fake_openai.url, sel, concurrency=1)
    failed = [r for r in res.rows if r["error"]]
    assert [r["id"] for r in failed] == [sel.suites[0].items[1].id, sel.suites[1].items[2].id]
    assert all(r["error"] == "scoring failed: ZeroDivisionError: a scorer bug" and r["completion"] for r in failed)
    arith, eq = res.summaries
    assert (arith["n"], arith["failed"], arith["parse_rate"]) == (4, 1, 0.75)
    assert failed[0]["score"] == 0.0 and failed[1]["score"] is None  # EQ leaves it out, as EQ-Bench does
    assert (eq["n"], eq["failed"], eq["parse_rate"]) == (4, 1, 0.75)


def test_scoring_failures_are_not_a_broken_server(fake_openai, monkeypatch):
    fake_openai.responder = lambda p: "The answer is 5"
    monkeypatch.setattr(probing, "score_text", lambda it, text: 1 / 0)
    res = run_suites(fake_openai.url, "math.arith", limit=8, concurrency=1)  # no fail-fast, no "every request failed"
    assert res.summaries[0]["failed"] == 8 and res.summaries[0]["score"] == 0.0


# --- chaos: a stand-in server that answers with nothing but hostile replies -----------

def check_rows(rows: list[dict]) -> None:
    assert rows
    for r in rows:
        assert_row_in_range(r["scoring"], r)
        if "p_correct" in r:
            assert 0.0 <= r["p_correct"] <= 1.0 and all(0 < p <= 1 for p in r["option_probs"].values())


@pytest.mark.parametrize("args", [["--mode", "generate"], ["--mode", "choice"], ["--eq-revise"]])
def test_chaos_through_rys_probe(fake_openai, tmp_path, args):
    blob = "".join(HOSTILE)  # the stand-in really sends every class the issue lists
    for needle in (BIG, "9" * 4400, "inf", "NaN", "1e999", "\u0664", "\uff14", "3/4", "\x00", "\ud800", "<think>",
                   "99999999999999999999", ": -3"):
        assert needle in blob, needle
    assert "" in HOSTILE and max(map(len, HOSTILE)) >= 200_000
    fake_openai.responder = chaos_responder()
    out = tmp_path / "rows.jsonl"
    r = CliRunner().invoke(cli, ["probe", "--url", fake_openai.url, "--suite", full_spec(), "--limit", "6",
                                 "--concurrency", "2", "--json", "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    summaries = json.loads(r.stdout)
    scoring = {s.name: s.scoring for s in resolve(full_spec(), limit=1).suites}
    for s in summaries:
        lo, hi = score_range(scoring.get(s["suite"], "exact"))
        assert lo <= s["score"] <= hi and s["ci_low"] <= s["ci_high"] and 0 <= s["parse_rate"] <= 1, s
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["scoring"] = scoring[row["suite"]]
    check_rows(rows)
    assert len(fake_openai.requests) == len(rows) >= 8 * 6  # built-in suites alone: 8 suites of 6 items
    assert any(r["error"] for r in rows) and sum(r["error"] is None for r in rows) > len(rows) / 2


class ChaosServer:
    """Stands in for rys.search.serving.server.LlamaServer: every candidate is 'served' by the chaos stand-in."""

    url = None

    def __init__(self, model, log_path=None, **kw):
        self.base_url, self.props = ChaosServer.url, {"total_slots": kw.get("slots")}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def alive(self):
        return True


def test_chaos_through_rys_sweep_and_rank(fake_openai, tmp_path, monkeypatch):
    import rys.search.serving.server

    fake_openai.responder = chaos_responder()
    ChaosServer.url = fake_openai.url
    monkeypatch.setattr(rys.search.serving.server, "LlamaServer", ChaosServer)
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 8)
    out = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep", str(model), "--blocks", "0-1,4-5", "--suite", "math,eq,reasoning",
                                 "--limit", "4", "--concurrency", "2", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    with Store(out) as store:
        assert {c.candidate: c.status for c in store.candidates()} == {"baseline": "ok", "0-1": "ok", "4-5": "ok"}
        rows = store.item_rows()
    assert len(rows) == 3 * 8 * 4  # 3 candidates, 8 suites, 4 items each
    check_rows(rows)
    db = sqlite3.connect(out / "results.sqlite")
    assert all(math.isfinite(s) for (s,) in db.execute("SELECT score FROM items WHERE score IS NOT NULL"))
    ranked = CliRunner().invoke(cli, ["rank", str(out), "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    assert {x["candidate"] for x in json.loads(ranked.stdout)} == {"baseline", "0-1", "4-5"}


