"""A fake OpenAI-compatible chat server on 127.0.0.1 for probe tests.

Each request's JSON body goes to a `responder(payload)` that returns either
a completion text, a list of (token, logprob) pairs for a one-token choice
answer, or an (HTTP status, body) pair. Helpers below build responders that
answer every item right, wrong, or with garbage."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rys.evaluate import user_message


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

def eq_answer(scores: dict) -> str:
    block = "\n".join(f"{k}: {v}" for k, v in scores.items())
    return f"First pass scores:\n{block}\n\nCritique: fine.\n\nRevised scores:\n{block}\n\n[End of answer]"


def right_text(item) -> str:
    if item.answer == "emotions":
        return eq_answer(item.reference)
    if item.answer == "label":
        label = f"({item.reference})" if len(item.reference) == 1 else item.reference
        return f"Let me think.\nSo the answer is {label}."
    if item.answer == "number":
        return f"Step one, step two.\nThe answer is {item.reference:,}."
    return f"So the answer is {item.reference}."


def wrong_text(item) -> str:
    if item.answer == "emotions":
        return eq_answer({k: 10 if v < 5 else 0 for k, v in item.reference.items()})
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
