"""Reading answers out of completions. Kept apart from scoring (rys.scorers):
extraction decides *what* the model answered, scoring how good it is.

Every function returns None when it finds no answer; the caller counts that
as a parse failure rather than guessing."""

from __future__ import annotations

import math
import re

THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
# A number: scientific forms first ("9.6e4", "9.6 x 10^4"), then digits with
# optional thousands separators and decimals. The look-behind keeps "5-3" from
# reading as minus three.
NUMBER = re.compile(
    r"(?<![\w.])(-?)\$?"
    r"(?:(\d+(?:\.\d+)?)\s*(?:[eE]\+?|\s*[x×*]\s*10\s*\^\s*)(-?\d+)"
    r"|(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?))"
)
ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*(.*)", re.I)
MARKDOWN = str.maketrans("", "", "*#")


def strip_think(text: str) -> str:
    """Drop <think>...</think> blocks (and an unfinished one at the end); if only
    a closing tag is present (the template opened the block), keep what follows it."""
    text = THINK_BLOCK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def _to_number(sign: str, mant: str | None, exp: str | None, plain: str | None) -> int | float:
    if plain is not None:
        value = float(plain.replace(",", "")) if "." in plain else int(plain.replace(",", ""))
    else:
        value = float(mant) * 10 ** int(exp)
    value = -value if sign else value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    return value


def numbers(text: str) -> list[int | float]:
    text = text.replace("\u2212", "-")  # typographic minus
    return [_to_number(*m.groups()) for m in NUMBER.finditer(text)]


def parse_number(text: str) -> int | float | None:
    """The first number in a short string ("#### 1,234", "-35")."""
    found = numbers(text)
    return found[0] if found else None


def answer_phrase(text: str) -> str | None:
    """What follows the last "answer is" / "answer:", to the end of its line."""
    found = ANSWER_IS.findall(strip_think(text).translate(MARKDOWN))
    if not found:
        return None
    phrase = found[-1].split("\n", 1)[0].strip()
    return phrase or None


def final_number(text: str) -> int | float | None:
    """The model's final numeric answer: after the last "####", inside the last
    \\boxed{}, after the last "answer is", or else the last number written."""
    text = strip_think(text).translate(str.maketrans("", "", "*"))
    if "####" in text:
        return parse_number(text.rsplit("####", 1)[1])
    boxed = re.findall(r"\\boxed\{([^}]*)\}", text)
    if boxed and parse_number(boxed[-1]) is not None:
        return parse_number(boxed[-1])
    phrase = answer_phrase(text)
    if phrase is not None and parse_number(phrase) is not None:
        return parse_number(phrase)
    found = numbers(text)
    return found[-1] if found else None


def _as_label(token: str, labels: tuple[str, ...]) -> str | None:
    token = token.strip().strip("()[]{}\"'`.,:;!").strip()
    for label in labels:
        if token.lower() == label.lower():
            return label
    return None


def _label_in(phrase: str, labels: tuple[str, ...]) -> str | None:
    """A label at the start of a phrase ("(B).", "Yes, because"), else the one
    label the phrase mentions ("option (C)", "we do not: No")."""
    first, *rest = re.split(r"[\s,]+", phrase.strip(), maxsplit=1)
    hedged = bool(rest) and re.match(r"(or|and)\b", rest[0], re.I)  # "A or B" chooses nothing
    if _as_label(first, labels) and not hedged:
        return _as_label(first, labels)
    hits = set()
    for label in labels:
        # single letters only count in brackets or in capitals, not as the article "a"
        pattern = rf"\({re.escape(label)}\)|\b{re.escape(label)}\b"
        flags = 0 if len(label) == 1 else re.I
        if re.search(pattern, phrase, flags):
            hits.add(label)
    return hits.pop() if len(hits) == 1 else None


def extract_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The option the model chose: from "the answer is X", or a reply that is
    just the label, or a first line that starts with it ("B. The van")."""
    phrase = answer_phrase(text)
    if phrase is not None:
        return _label_in(phrase, labels)
    body = strip_think(text).translate(MARKDOWN).strip()
    if not body:
        return None
    if _as_label(body, labels):
        return _as_label(body, labels)
    first = body.split("\n", 1)[0]
    m = re.match(r"^\(?(\w+)\)?(?:[.):,]|\s*$)", first)
    return _as_label(m.group(1), labels) if m else None


def extract_text(text: str) -> str | None:
    """A free-form answer: what follows "the answer is", without the final period."""
    phrase = answer_phrase(text)
    if phrase is None:
        body = strip_think(text).strip()
        phrase = body if body and "\n" not in body and len(body) < 80 else None
    if phrase is None:
        return None
    return phrase.strip().rstrip(".").strip("\"'` ") or None


def emotion_block(block: str, emotions: list[str]) -> dict[str, float] | None:
    """`Name: value` pairs of one score block, keyed by the item's own emotion
    names, or None unless they are exactly the item's four emotions. Values are
    taken as written (as EQ-Bench does): an out-of-range 12 is scored as 12, a
    negative value does not parse."""
    pairs = re.findall(r"([A-Za-z][\w-]*)\s*:\s*(\d+(?:\.\d+)?)", block)
    canon = {e.lower(): e for e in emotions}
    found = {}
    for name, value in pairs:
        found[name.lower()] = float(value)
    if len(found) != len(emotions) or set(found) != set(canon):
        return None
    return {canon[k]: v for k, v in found.items()}


def parse_emotions(text: str, emotions: list[str]) -> tuple[dict | None, dict | None]:
    """First-pass and revised scores of an EQ-Bench answer (see SCORING.md):
    the first pass lies between "First pass scores:" and "Revised scores:",
    the revision after "Revised scores:"."""
    text = strip_think(text).translate(MARKDOWN)
    first = re.search(r"First pass scores:(.*?)Revised scores:", text, re.S | re.I)
    revised = re.search(r"Revised scores:(.*)$", text, re.S | re.I)
    return (emotion_block(first.group(1), emotions) if first else None,
            emotion_block(revised.group(1), emotions) if revised else None)


def label_probs(top_logprobs: list[tuple[str, float]], labels: tuple[str, ...]) -> dict[str, float]:
    """Probability of each option label as the first generated token, summing
    the token's spellings (" B", "B", "(B"); labels absent from the top
    candidates get nothing. Empty when no label is among them."""
    probs: dict[str, float] = {}
    for token, logprob in top_logprobs:
        label = _as_label(token, labels)
        if label is not None:
            probs[label] = probs.get(label, 0.0) + math.exp(logprob)
    return probs
