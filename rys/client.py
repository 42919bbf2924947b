"""A small client for OpenAI-compatible chat completion servers (llama-server,
llama-cpp-python's server, vLLM, ...), on `requests`.

Greedy decoding, thinking turned off two ways (the `enable_thinking` template
switch, and a `/no_think` system line for templates that only know that)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

from .errors import RysError

SYSTEM_LINE = "/no_think"
TOP_LOGPROBS = 20  # the most the OpenAI API allows


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
        latency = self.clock() - start
        if resp.status_code >= 400:
            raise ItemFailed(f"server error {resp.status_code}: {resp.text.strip()[:200]}")
        return self._parse(resp, latency)

    @staticmethod
    def _parse(resp: requests.Response, latency: float) -> Reply:
        try:
            body = resp.json()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            usage = body.get("usage") or {}
            top = []
            content = (choice.get("logprobs") or {}).get("content") or []
            if content:
                top = [(t["token"], float(t["logprob"])) for t in content[0].get("top_logprobs", [])]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ItemFailed(f"unexpected reply: {resp.text.strip()[:200]}") from None
        return Reply(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), latency, top)

    def server_info(self) -> dict:
        """What llama-server says about itself (build, slots), for provenance;
        empty for servers without /props."""
        root = self.base[: -len("/v1")]
        try:
            resp = self._session().get(f"{root}/props", timeout=5)
            props = resp.json() if resp.ok else {}
        except (requests.RequestException, ValueError):
            return {}
        if not isinstance(props, dict):
            return {}
        info = {"slots": props.get("total_slots"), "build": props.get("build_info"),
                "model_path": props.get("model_path")}
        return {k: v for k, v in info.items() if v is not None}
