"""A small client for OpenAI-compatible chat completion servers (llama-server,
llama-cpp-python's server, vLLM, ...), on `requests`.

Greedy decoding, thinking turned off two ways (the `enable_thinking` template
switch, and a `/no_think` system line for templates that only know that)."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field

import requests

from ...core.errors import RysError

SYSTEM_LINE = "/no_think"
TOP_LOGPROBS = 20  # the most the OpenAI API allows
MAX_COUNT = 2**31  # a token count at or past this is not one a server meant
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON "\\ud800" decodes to one; UTF-8 cannot hold it


class ItemFailed(Exception):
    """One request failed (timeout, server error, malformed reply): the item is
    recorded as failed and the suite goes on."""


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency: float  # seconds
    top_logprobs: list[tuple[str, float]] = field(default_factory=list)  # first generated token's


def api_base(url: str) -> str:
    """http://host:port, http://host:port/ and http://host:port/v1 all name the same API root."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RysError(f"--url must start with http:// or https://, got {url!r}")
    return url if url.endswith("/v1") else url + "/v1"


def messages_for(user: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_LINE}, {"role": "user", "content": user}]


def _content(content) -> str:
    """A message's text: a string (lone surrogates replaced by U+FFFD, so that
    rows can be written as UTF-8 and stored), null as "", or a list of text
    parts joined; any other type is not a chat completion (TypeError)."""
    if content is None:
        return ""
    if isinstance(content, list):
        content = "".join(part["text"] for part in content
                          if isinstance(part, dict) and isinstance(part.get("text"), str))
    if not isinstance(content, str):
        raise TypeError(f"message content is {type(content).__name__}")
    return LONE_SURROGATE.sub("\ufffd", content)


def _count(value) -> int:
    """A token count as reported, or 0 when it is missing or no count at all
    (negative, fractional, a string, NaN, 2**31 or more)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT else 0


def _top_logprobs(choice: dict) -> list[tuple[str, float]]:
    """The first generated token's (token, logprob) candidates, skipping entries
    that are not a string token with a number (extract.label_probs then reads
    NaN, infinities and duplicates safely); empty when they are missing."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    first = content[0] if isinstance(content, list) and content else None
    top = first.get("top_logprobs") if isinstance(first, dict) else None
    out = []
    for t in top if isinstance(top, list) else []:
        lp = t.get("logprob") if isinstance(t, dict) else None
        if isinstance(t, dict) and isinstance(t.get("token"), str) and isinstance(lp, (int, float)) \
                and not isinstance(lp, bool):
            out.append((LONE_SURROGATE.sub("\ufffd", t["token"]), lp if isinstance(lp, float) else _clip(lp)))
    return out


def _clip(n: int) -> float:
    """An integer logprob as a float (one past float range is -inf or +inf)."""
    try:
        return float(n)
    except OverflowError:
        return math.inf if n > 0 else -math.inf


class ChatClient:
    def __init__(self, url: str, model: str = "rys", timeout: float = 120.0, clock=time.perf_counter):
        self.url = url
        self.base = api_base(url)
        self.model = model
        self.timeout = timeout
        self.clock = clock
        self._local = threading.local()  # one keep-alive session per worker thread

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def chat(self, user: str, max_tokens: int, top_logprobs: int = 0) -> Reply:
        payload = {
            "model": self.model,
            "messages": messages_for(user),
            "temperature": 0.0,
            "top_p": 1.0,
            "max_tokens": max_tokens,
            "chat_template_kwargs": {"enable_thinking": False},
        }
        if top_logprobs:
            payload.update(logprobs=True, top_logprobs=top_logprobs)
        start = self.clock()
        try:
            resp = self._session().post(f"{self.base}/chat/completions", json=payload,
                                        timeout=(min(10.0, self.timeout), self.timeout))
        except requests.ConnectTimeout:
            raise RysError(f"cannot reach {self.url}: connection timed out") from None
        except requests.ReadTimeout:
            raise ItemFailed(f"no answer within {self.timeout:g}s") from None
        except requests.ConnectionError as e:
            # requests reports a timeout while reading the body as a ConnectionError
            if "timed out" in str(e):
                raise ItemFailed(f"no answer within {self.timeout:g}s") from None
            raise RysError(f"cannot reach {self.url}: is a server running there?") from None
        except requests.RequestException as e:  # a body cut short or badly encoded
            raise ItemFailed(f"broken reply: {type(e).__name__}") from None
        latency = self.clock() - start
        if resp.status_code >= 400:
            raise ItemFailed(f"server error {resp.status_code}: {resp.text.strip()[:200]}")
        return self._parse(resp, latency)

    @staticmethod
    def _parse(resp: requests.Response, latency: float) -> Reply:
        """A Reply, or ItemFailed for a body that is not a chat completion. Inside
        one, whatever the server sends is read without raising: null content is
        an empty answer, absurd usage figures count 0, broken logprobs none."""
        try:
            body = resp.json()
            choice = body["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError(f"message is {type(message).__name__}")
            text = _content(message.get("content"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
            raise ItemFailed(f"unexpected reply: {resp.text.strip()[:200]}") from None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return Reply(text, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")),
                     latency, _top_logprobs(choice))

    def server_info(self) -> dict:
        """What llama-server says about itself (build, slots), for provenance;
        empty for servers without /props."""
        root = self.base[: -len("/v1")]
        try:
            resp = self._session().get(f"{root}/props", timeout=5)
            props = resp.json() if resp.ok else {}
        except (requests.RequestException, ValueError, RecursionError):
            return {}
        if not isinstance(props, dict):
            return {}
        info = {"slots": props.get("total_slots"), "build": props.get("build_info"),
                "model_path": props.get("model_path")}
        return {k: v for k, v in info.items() if v is not None}
