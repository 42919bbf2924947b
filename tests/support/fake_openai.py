"""A fake OpenAI-compatible chat server on 127.0.0.1 for probe tests.

Each request's JSON body goes to a `responder(payload)` that returns either
a completion text, a list of (token, logprob) pairs for a one-token choice
answer, or an (HTTP status, body) pair. Helpers below build responders that
answer every item right, wrong, or with garbage, and a chaos responder that
answers with what a broken candidate model or server might send."""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rys.search.probing import user_message


class FakeOpenAI:
    def __init__(self):
        self.responder = lambda payload: "no responder set"
        self.requests: list[dict] = []
        self.props: dict | None = None  # what GET /props answers (llama-server only), None = 404
        self.release = threading.Event()  # set at teardown to free handlers that sleep
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path == "/props" and fake.props is not None:
                    return self._send(200, fake.props)
                self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                answer = fake.responder(body)
                if isinstance(answer, tuple):
                    return self._send(answer[0], answer[1])
                self._send(200, completion(answer, body))

            def _send(self, status, body):
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def completion(answer, payload: dict) -> dict:
    """An OpenAI chat completion body for a text or a (token, logprob) list."""
    if isinstance(answer, list):
        text = answer[0][0] if answer else ""
        logprobs = {"content": [{"token": text, "logprob": answer[0][1] if answer else 0.0,
                                 "top_logprobs": [{"token": t, "logprob": lp} for t, lp in answer]}]}
    else:
        text, logprobs = answer, None
    return {"id": "fake", "object": "chat.completion", "model": payload.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.close()


# --- responders -------------------------------------------------------------------

def eq_answer(scores: dict, revise: bool = True) -> str:
    block = "\n".join(f"{k}: {v}" for k, v in scores.items())
    if not revise:  # EQ-Bench v2.1: the four ratings alone
        return block
    return f"First pass scores:\n{block}\n\nCritique: fine.\n\nRevised scores:\n{block}\n\n[End of answer]"


def right_text(item) -> str:
    if item.answer.startswith("emotions"):
        return eq_answer(item.reference, item.answer == "emotions_revised")
    if item.answer == "label":
        label = f"({item.reference})" if len(item.reference) == 1 else item.reference
        return f"Let me think.\nSo the answer is {label}."
    if item.answer == "number":
        return f"Step one, step two.\nThe answer is {item.reference:,}."
    return f"So the answer is {item.reference}."


def wrong_text(item) -> str:
    if item.answer.startswith("emotions"):
        wrong = {k: 10 if v < 5 else 0 for k, v in item.reference.items()}
        if not any(wrong.values()):  # all zeros would not parse
            wrong[next(iter(wrong))] = 1
        return eq_answer(wrong, item.answer == "emotions_revised")
    if item.answer == "label":
        other = next(c for c in item.choices if c != item.reference)
        return f"So the answer is {other}."
    if item.answer == "number":
        return f"The answer is {-(abs(item.reference) + 1)}."
    return "So the answer is certainly not that."


def choice_tokens(item, right: bool) -> list[tuple[str, float]]:
    """Top logprobs for a one-token answer, leading with the right or a wrong label."""
    first = item.reference if right else next(c for c in item.choices if c != item.reference)
    rest = [c for c in item.choices if c != first]
    return [(" " + first, -0.2)] + [(c, -3.0) for c in rest] + [("The", -4.0)]


def responder_for(selection, mode: str, kind: str):
    """A responder that knows every item of a selection by its prompt."""
    items = {user_message(s, it, mode): it for s in selection.suites for it in s.items}

    def respond(payload):
        item = items[payload["messages"][-1]["content"]]
        if kind == "garbage":
            return "lorem ipsum\ndolor sit amet" if not payload.get("logprobs") else [("lorem", -0.1)]
        if payload.get("logprobs"):
            return choice_tokens(item, kind == "right")
        return right_text(item) if kind == "right" else wrong_text(item)

    return respond


# --- chaos: what a broken candidate model (or server) may send ---------------------

def emotions_in(prompt: str) -> list[str]:
    """The four emotion names an EQ prompt lists after "would feel...", else stand-ins."""
    m = re.search(r"would feel\.\.\.\n((?:[^\n]+\n){4})", prompt)
    return m.group(1).split() if m else ["Angry", "Sad", "Calm", "Glad"]


BIG = "4" + "0" * 399  # 400 digits: no float holds it


def hostile_texts(emotions: list[str]) -> list[str]:
    """Completions of every hostile class: numbers no float holds, non-ASCII
    digits, fractions, nothing, 200 KB built to trip quadratic patterns,
    control characters, lone surrogates, an unclosed <think>, absurd ratings."""
    e = emotions
    ratings = lambda values: "\n".join(f"{n}: {v}" for n, v in zip(e, values))
    return [
        "The answer is " + BIG + ".",                         # OverflowError in numbers_equal
        "9" * 5000,                                           # past Python's 4,300-digit int limit
        "The answer is inf", "NaN", "The answer is -1e999.", "roughly 1e999999999", "1 x 10^999",
        "The answer is \u0664\u0662.", "\uff14\uff12", "The answer is 3/4, or \u00bd.",
        "", "   \n\t ",
        "1" + " " * 200_000 + "z",                            # one number, then 200 KB of spaces
        "a" * 200_000,                                        # one 200 KB word
        "\\boxed{" * 30_000,                                 # 200 KB of unclosed boxes
        "First pass scores:" * 11_000,                        # 200 KB of headings, no revision
        "answer is " * 20_000,
        "\x00\x01\x1b[31mThe answer is \x07 (B)\x7f",
        "\ud800 The answer is \udfff 7 \udbff",                # lone surrogates
        "<think>The answer is 42, and " + ratings([5, 5, 5, 5]),
        ratings(["99999999999999999999"] * 4),
        ratings([BIG] * 4),
        ratings([-3, -1, 2, 4]),
        ratings([0, 0, 0, 0]),
        ratings([1, 2, 3, 4]) + "\n" + ratings([9, 8, 7, 6]) + "\n" + ratings([10, 10, 10, 10]),
        "First pass scores:\n" + ratings([99999999999999999999] * 4) + "\nRevised scores:\n" + ratings([BIG] * 4),
        f"**{e[0].upper()}:** 7\n## {e[1].lower()}: 3\n{e[2]}:\t2.5\n{e[3]}: 0002",
        "The answer is A or B. (A) (B) (C) Yes No",
    ]


def _body(text, usage=None, logprobs=None, **message) -> dict:
    message = {"role": "assistant", "content": text, **message}
    body = {"id": "chaos", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "length", "logprobs": logprobs, "message": message}]}
    if usage is not None:
        body["usage"] = usage
    return body


def _tops(*pairs) -> dict:
    return {"content": [{"token": "x", "logprob": -1.0,
                         "top_logprobs": [{"token": t, "logprob": lp} for t, lp in pairs]}]}


NAN, INF = float("nan"), float("inf")
# Replies that are chat completions with hostile fields: each reads as an
# answer (maybe an empty or unparseable one), never as an exception.
SOFT_REPLIES = [
    lambda t: _body(t, {"prompt_tokens": 12, "completion_tokens": 7}),
    lambda t: _body(t, {"prompt_tokens": -5, "completion_tokens": -1}),
    lambda t: _body(t, {"prompt_tokens": "many", "completion_tokens": None}),
    lambda t: _body(t, {"prompt_tokens": NAN, "completion_tokens": INF}),
    lambda t: json.dumps(_body(t, {"prompt_tokens": 1, "completion_tokens": 0})).replace(
        '"completion_tokens": 0', '"completion_tokens": 1' + "0" * 400),  # an int no float holds
    lambda t: _body(t, "usage is a string"),
    lambda t: _body(None, {"prompt_tokens": 3}),                       # null content
    lambda t: {"choices": [{"message": {"role": "assistant"}}]},          # no content, no usage
    lambda t: _body([{"type": "text", "text": t}, {"type": "image"}, 7]),  # content as parts
    lambda t: _body(t, logprobs=_tops((" A", NAN), ("B", -INF), ("Yes", NAN))),
    lambda t: _body(t, logprobs=_tops((" B", -0.1), (" B", -0.1), ("B", -0.1), ("(B", -0.1))),  # duplicated
    lambda t: _body(t, logprobs=_tops(("A", INF), ("No", 1000.0), ("C", -1e308))),
    lambda t: _body(t, logprobs={"content": []}),
    lambda t: _body(t, logprobs={"content": [{"token": "A", "top_logprobs": None}]}),
    lambda t: _body(t, logprobs=_tops((7, -0.1), ("A", "high"), (None, None), ("Yes", True))),
    lambda t: json.dumps(_body(t, logprobs=_tops(("A", -1.0)))).replace("-1.0}]", "-1" + "0" * 400 + "}]"),
    lambda t: _body(t, logprobs="none"),
]
# Replies that are no chat completion at all: recorded as failed items.
HARD_REPLIES = [
    lambda t: {"choices": []},
    lambda t: "[" * 100_000,                                   # nesting past Python's recursion limit
    lambda t: _body(12345),                                    # content is a number
    lambda t: (500, "model crashed"),
    lambda t: "{not json",
    lambda t: ["a", "list"],
    lambda t: {"choices": [{"message": None}]},
]


def chaos_replies() -> list:
    """Every soft reply, with a hard one after every three: any five requests
    in a row hold at least three answers, so the fail-fast guard (five
    failures before any success) never mistakes chaos for a dead server."""
    out, hard = [], itertools.cycle(HARD_REPLIES)
    for i, soft in enumerate(SOFT_REPLIES * 2):
        out.append(soft)
        if i % 3 == 2:
            out.append(next(hard))
    return out


def chaos_responder():
    """Answers request i with hostile text i (for that request's EQ emotions)
    wrapped in reply i, both rotating (choice requests get the logprob replies too)."""
    replies, lock, count = chaos_replies(), threading.Lock(), itertools.count()

    def respond(payload):
        with lock:
            i = next(count)
        texts = hostile_texts(emotions_in(payload["messages"][-1]["content"]))
        reply = replies[i % len(replies)](texts[i % len(texts)])
        if isinstance(reply, tuple):
            return reply
        return 200, reply if isinstance(reply, str) else json.dumps(reply)

    return respond
