"""run_suites against a fake OpenAI-compatible server: right answers score
perfectly, wrong ones 0, garbage counts as parse failures."""

import threading
import time

import pytest
from support.fake_openai import FakeOpenAI, responder_for
from support.shared_data import DATASETS

from rys.search import probing
from rys.search.serving.client import ChatClient
from rys.core.errors import RysError
from rys.search.bootstrap import bootstrap_ci
from rys.search.probing import run_suites, user_message
from rys.search.suites import resolve

BBH = ["boolean_expressions", "causal_judgement", "date_understanding", "logical_deduction_five_objects",
       "logical_deduction_three_objects", "multistep_arithmetic_two", "navigate"]


def full_spec():
    """Every built-in suite, and every loader when the shared data sets are there."""
    spec = "math,eq,reasoning"
    if DATASETS.is_dir():
        spec += (f",gsm8k={DATASETS}/gsm8k/train.jsonl,eqbench={DATASETS}/eqbench/eq_bench_v2_questions_171.json,"
                 + ",".join(f"bbh={DATASETS}/bbh/{t}.json" for t in BBH))
    return spec


@pytest.fixture(scope="module")
def selection():
    return resolve(full_spec(), limit=6, seed=0)


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI()
    yield fake
    fake.close()


def run(server, selection, mode, kind, **kw):
    server.responder = responder_for(selection, mode, kind)
    return run_suites(server.url, selection, mode=mode, **kw)


@pytest.mark.parametrize("mode", ["generate", "choice"])
def test_right_answers_score_perfectly(server, selection, mode):
    res = run(server, selection, mode, "right")
    assert len(res.summaries) == len(selection.suites) + 2  # + the math and reasoning pools
    for s in res.summaries:
        top = 100.0 if s["scale"] == 100 else 1.0
        assert (s["score"], s["ci_low"], s["ci_high"], s["parse_rate"], s["failed"]) == (top, top, top, 1.0, 0), s["suite"]
        assert s["n"] == (30 if s["suite"] == "reasoning" else 12 if s["suite"] == "math" else 6)
    if mode == "choice":
        mc = [s for s in res.summaries if "p_correct" in s]
        assert {s["suite"] for s in mc} >= {"reasoning.date", "reasoning.logic", "reasoning"}
        assert all(s["p_correct"] > 0.7 for s in mc)
        assert {r["mode"] for r in res.rows if r["suite"] == "math.arith"} == {"generate"}


@pytest.mark.parametrize("mode", ["generate", "choice"])
def test_wrong_answers_score_zero(server, selection, mode):
    res = run(server, selection, mode, "wrong")
    for s in res.summaries:
        assert s["parse_rate"] == 1.0, s["suite"]
        if s["scale"] == 100:
            assert s["score"] < 0  # EQ-Bench v2 puts answers worse than random below 0
        else:
            assert (s["score"], s["ci_high"]) == (0.0, 0.0), s["suite"]


@pytest.mark.parametrize("mode", ["generate", "choice"])
def test_garbage_counts_as_parse_failures(server, selection, mode):
    res = run(server, selection, mode, "garbage")
    for s in res.summaries:
        assert (s["score"], s["parse_rate"], s["failed"]) == (0.0, 0.0, 0), s["suite"]
    assert not any(r["parseable"] for r in res.rows)
    assert all(r["completion"] for r in res.rows)  # the raw completion is kept


def test_rows_keep_what_is_needed(server):
    sel = resolve("math.word,eq", limit=3)
    res = run(server, sel, "generate", "right")
    row = res.rows[0]
    for key in ("suite", "id", "version", "mode", "reference", "completion", "extracted", "parseable",
                "score", "latency", "prompt_tokens", "completion_tokens", "error"):
        assert key in row
    assert row["extracted"] == row["reference"] and row["completion_tokens"] == 5
    assert [r["id"] for r in res.rows] == [i.id for s in sel.suites for i in s.items]
    eq = res.rows[-1]
    assert (eq["first"], eq["revised"], eq["score"]) == (10.0, None, 100.0)  # v2.1: no revision asked


def test_requests_turn_thinking_off_and_are_greedy(fake_openai):
    sel = resolve("math.arith,reasoning.date", limit=2)
    for mode in ("generate", "choice"):
        fake_openai.requests.clear()
        fake_openai.responder = responder_for(sel, mode, "right")
        run_suites(fake_openai.url, sel, mode=mode)
        for body in fake_openai.requests:
            assert body["chat_template_kwargs"] == {"enable_thinking": False}
            assert body["messages"][0] == {"role": "system", "content": "/no_think"}
            assert body["temperature"] == 0
        tokens = sorted((b["max_tokens"], b.get("top_logprobs")) for b in fake_openai.requests)
        if mode == "generate":
            assert tokens == [(32, None)] * 2 + [(256, None)] * 2
        else:
            assert tokens == [(1, 20)] * 2 + [(32, None)] * 2  # arithmetic has no options: generated


def test_prompts_of_a_suite_share_their_prefix():
    for s in resolve("math,reasoning", limit=5).suites:
        prompts = [user_message(s, i, "generate") for i in s.items]
        assert len(s.prefix) > 40 and all(p.startswith(s.prefix) for p in prompts), s.name


def test_concurrency_is_bounded(fake_openai):
    sel = resolve("math.arith", limit=9)
    right = responder_for(sel, "generate", "right")
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def slow(payload):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return right(payload)

    fake_openai.responder = slow
    run_suites(fake_openai.url, sel, concurrency=3)
    assert 2 <= state["max"] <= 3


def test_one_failing_item_is_recorded_and_the_suite_goes_on(fake_openai):
    sel = resolve("reasoning.date", limit=4)
    right = responder_for(sel, "generate", "right")
    bad = user_message(sel.suites[0], sel.suites[0].items[1], "generate")
    fake_openai.responder = lambda p: (500, "boom") if p["messages"][-1]["content"] == bad else right(p)
    res = run_suites(fake_openai.url, sel)
    (s,) = res.summaries
    assert (s["score"], s["parse_rate"], s["failed"], s["n"]) == (0.75, 0.75, 1, 4)
    assert res.rows[1]["error"] == "server error 500: boom" and res.rows[1]["score"] == 0.0


def test_progress_is_reported(fake_openai):
    sel = resolve("math.arith,eq", limit=3)
    fake_openai.responder = responder_for(sel, "generate", "right")
    seen = []
    run_suites(fake_openai.url, sel, progress=lambda *a: seen.append(a))
    assert sorted(seen) == [("eq", k, 3) for k in (1, 2, 3)] + [("math.arith", k, 3) for k in (1, 2, 3)]


def test_server_props_are_recorded(fake_openai):
    sel = resolve("math.arith", limit=1)
    fake_openai.responder = responder_for(sel, "generate", "right")
    fake_openai.props = {"total_slots": 4, "build_info": "b1234-abc", "model_path": "/m.gguf"}
    res = run_suites(fake_openai.url + "/v1/", sel, seed=3)
    assert res.meta["server"] == {"slots": 4, "build": "b1234-abc", "model_path": "/m.gguf"}
    assert res.meta["seed"] == 3 and res.meta["suites"]["math.arith"]["version"] == "1"


def test_a_broken_server_stops_the_run_early(fake_openai):
    fake_openai.responder = lambda p: (500, "down")
    with pytest.raises(RysError, match=r"^the first 5 requests to .* all failed: server error 500: down$"):
        run_suites(fake_openai.url, "math.arith", limit=40, concurrency=2)
    assert len(fake_openai.requests) < 10  # it did not ask all 40


@pytest.mark.parametrize("kw, message", [
    ({"mode": "loglik"}, "unknown mode 'loglik'"),
    ({"concurrency": 0}, "--concurrency must be at least 1"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(RysError, match=message):
        run_suites("http://127.0.0.1:9", "math", **kw)


# --- the bootstrap interval ---------------------------------------------------------

def rows_of(scores):
    return [{"score": s, "parseable": True} for s in scores]


def test_bootstrap_is_seeded_and_brackets_the_score():
    spread = rows_of([i / 39 for i in range(40)])
    a = bootstrap_ci("partial", spread, seed=0, name="x")
    assert a == bootstrap_ci("partial", spread, seed=0, name="x")
    assert a != bootstrap_ci("partial", spread, seed=1, name="x")
    assert a != bootstrap_ci("partial", spread, seed=0, name="y")  # each suite its own resamples
    lo, hi = bootstrap_ci("exact", rows_of([1.0, 0.0] * 20), seed=0, name="x")
    # p = 0.5, n = 40: the normal approximation gives 0.5 +- 0.155
    assert 0.32 < lo < 0.40 and 0.60 < hi < 0.68


def test_bootstrap_of_eq_recomputes_the_eq_score():
    rows = [{"first": 5.0, "revised": 5.0, "score": 50.0, "parseable": True}] * 10
    assert bootstrap_ci("eqbench", rows, seed=0, name="eq") == (50.0, 50.0)
    mixed = rows[:5] + [{"first": None, "revised": None, "score": None, "parseable": False}] * 5
    assert bootstrap_ci("eqbench", mixed, seed=0, name="eq") == (50.0, 50.0)  # failures do not count


def test_seconds_span_first_request_to_last_answer(fake_openai, monkeypatch):
    """Clocks that advance by known steps. One request at a time: math.word's two
    items (the longer budget) then math.arith's. An item was sent at its answer
    time minus its latency, never before the run started."""
    sel = resolve("math", limit=2)
    fake_openai.responder = responder_for(sel, "generate", "right")
    answered = iter([100.0, 103.0, 111.0, 113.0, 122.0])  # the run's start, then each answer
    monkeypatch.setattr(probing, "clock", lambda: next(answered))
    request = iter([0.0, 5.0, 10.0, 14.0, 20.0, 21.0, 30.0, 35.0])  # latencies 5, 4, 1, 5
    client = ChatClient(fake_openai.url, clock=lambda: next(request))
    res = run_suites(fake_openai.url, sel, concurrency=1, client=client)
    # math.word: sent max(100, 103 - 5) = 100, last answer 111; math.arith: sent
    # 113 - 1 = 112, last answer 122; the pool math spans both (not their sum, 21).
    seconds = {s["suite"]: s["seconds"] for s in res.summaries}
    assert seconds == {"math.word": 11.0, "math.arith": 10.0, "math": 22.0}
    assert [r["latency"] for r in res.rows] == [1.0, 5.0, 5.0, 4.0]  # rows in suite order


def test_longest_budgets_are_asked_first_and_suites_stay_together(fake_openai):
    sel = resolve("math.arith,reasoning.date,math.word,reasoning.causal", limit=3)
    fake_openai.responder = responder_for(sel, "generate", "right")
    res = run_suites(fake_openai.url, sel, concurrency=1)
    sent = [p["messages"][-1]["content"] for p in fake_openai.requests]
    by_prompt = {user_message(s, it, "generate"): (s.name, s.max_tokens)
                 for s in sel.suites for it in s.items}
    order = [by_prompt[m] for m in sent]
    budgets = [b for _, b in order]
    assert budgets == sorted(budgets, reverse=True) and budgets[0] > budgets[-1]
    names = [n for n, _ in order]
    assert names == ["math.word"] * 3 + ["reasoning.date"] * 3 + ["reasoning.causal"] * 3 + ["math.arith"] * 3
    # results still come back in suite and item order, whatever order they were asked in
    expected = ["math.arith"] * 3 + ["reasoning.date"] * 3 + ["math.word"] * 3 + ["reasoning.causal"] * 3
    assert [r["suite"] for r in res.rows] == expected
    assert [r["id"] for r in res.rows[:3]] == [it.id for it in sel.suites[0].items]
    assert all(r["score"] == 1.0 for r in res.rows)


def test_choice_items_are_asked_after_generated_ones(fake_openai):
    sel = resolve("reasoning.date,math.arith", limit=2)
    fake_openai.responder = responder_for(sel, "choice", "right")
    run_suites(fake_openai.url, sel, mode="choice", concurrency=1)
    budgets = [p["max_tokens"] for p in fake_openai.requests]
    assert budgets == [32, 32, 1, 1]
