"""Reading answers out of completions. Kept apart from scoring (rys.search.scorers):
extraction decides *what* the model answered, scoring how good it is.

Every function returns None when it finds no answer; the caller counts that
as a parse failure rather than guessing. They are total: a sweep runs broken
candidate models, so any string (200 KB of digits, lone surrogates, an
unclosed <think>) gives an answer or None, never an exception, in time linear
in its length (no pattern here can backtrack quadratically)."""

from __future__ import annotations

import math
import re

THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.S)
# A number: scientific forms first ("9.6e4", "9.6 x 10^4"), then digits with
# optional thousands separators and decimals. The look-behind keeps "5-3" from
# reading as minus three. (\d is any Unicode decimal digit: "٤٢" and "４２" read as 42.)
NUMBER = re.compile(
    r"(?<![\w.])(-?)\$?"
    r"(?:(\d+(?:\.\d+)?)\s*(?:[eE]\+?|[x×*]\s*10\s*\^\s*)(-?\d+)"
    r"|(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?))"
)
# Integers longer than this are read as floats (inf past 308 digits): no suite
# asks for one, and int() refuses strings of more than 4,300 digits.
MAX_DIGITS = 300
BOXED = re.compile(r"\\boxed\{([^}]{0,200})\}")  # bounded: "\boxed{" x 20,000 stays linear
# `Name: value` pairs; the look-behind starts names at word starts only (a run
# of 200 KB of letters is scanned once, not once per letter).
EMOTION_PAIR = re.compile(r"(?<![\w-])([A-Za-z][\w-]*)\s*:\s*(\d+(?:\.\d+)?)")
FIRST_PASS = re.compile(r"First pass scores:", re.I)
REVISED = re.compile(r"Revised scores:", re.I)
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
    """The value of a NUMBER match: an int, a float, or +-inf when it does not fit a float."""
    if plain is not None:
        digits = plain.replace(",", "")
        value = float(digits) if "." in digits or len(digits) > MAX_DIGITS else int(digits)
    else:
        value = float(f"{mant}e{exp}")  # never 10 ** exp: "1e999999999" would take minutes
    value = -value if sign else value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    return value


def finite(value) -> bool:
    """True for an int or a finite float: a value a score can be computed from."""
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def numbers(text: str) -> list[int | float]:
    """Every number in the text, in order; one too large for a float is +-inf."""
    text = text.replace("\u2212", "-")  # typographic minus
    return [_to_number(*m.groups()) for m in NUMBER.finditer(text)]


def _first_number(text: str) -> int | float | None:
    found = numbers(text)
    return found[0] if found else None


def parse_number(text: str) -> int | float | None:
    """The first number in a short string ("#### 1,234", "-35"); None when there
    is none or it does not fit a float ("1e999")."""
    value = _first_number(text)
    return value if finite(value) else None


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
        value = _first_number(text.rsplit("####", 1)[1])
    else:
        boxed = BOXED.findall(text)
        phrase = answer_phrase(text)
        if boxed and _first_number(boxed[-1]) is not None:
            value = _first_number(boxed[-1])
        elif phrase is not None and _first_number(phrase) is not None:
            value = _first_number(phrase)
        else:
            found = numbers(text)
            value = found[-1] if found else None
    # The chosen number decides, even when it is absurd: "The answer is 1e999"
    # is unparseable, not a fall-back to some earlier number.
    return value if finite(value) else None


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
    """The option the model chose: from the last "the answer is X", else a
    reply that is just the label, or a first line that starts with it ("B. The van")."""
    phrase = answer_phrase(text)
    if phrase is not None and _label_in(phrase, labels):
        return _label_in(phrase, labels)
    # No usable "answer is" (or one naming no option, "the answer is indeed X"):
    # small models often answer with the label alone on the first line.
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
    names (matched in any case, as EQ-Bench v2.1 does), or None unless they are
    exactly the item's four emotions. A name written twice keeps its last value.
    Values are taken as written (as EQ-Bench does): an out-of-range 12 is scored
    as 12, a negative value does not parse. As in EQ-Bench, all zeros do not
    parse (the prompt says at least one emotion must score above zero), nor
    does a value too large for a float."""
    canon = {e.lower(): e for e in emotions}
    found = {}
    for name, value in EMOTION_PAIR.findall(block):
        found[name.lower()] = float(value)
    if len(found) != len(emotions) or set(found) != set(canon):
        return None
    if not all(math.isfinite(v) for v in found.values()) or not any(found.values()):
        return None
    return {canon[k]: v for k, v in found.items()}


def parse_ratings(text: str, emotions: list[str]) -> dict | None:
    """The ratings of an EQ-Bench v2.1 answer (revision off, the default): the
    `Name: value` pairs of the whole reply, after `*` and `#` are removed."""
    return emotion_block(strip_think(text).translate(MARKDOWN), emotions)


def parse_emotions(text: str, emotions: list[str]) -> tuple[dict | None, dict | None]:
    """First-pass and revised scores of an EQ-Bench answer with revision on
    (v2.0, see SCORING.md): the first pass lies between "First pass scores:" and
    "Revised scores:", the revision after the first "Revised scores:"."""
    text = strip_think(text).translate(MARKDOWN)
    # Plain searches, not one lazy pattern: a reply of 10,000 "First pass scores:"
    # headings and no revision would make that quadratic.
    head, revised = FIRST_PASS.search(text), REVISED.search(text)
    end = REVISED.search(text, head.end()) if head else None
    first = emotion_block(text[head.end():end.start()], emotions) if end else None
    return first, emotion_block(text[revised.end():], emotions) if revised else None


def label_probs(top_logprobs: list[tuple[str, float]], labels: tuple[str, ...]) -> dict[str, float]:
    """Probability of each option label as the first generated token, summing
    the token's spellings (" B", "B", "(B"); labels absent from the top
    candidates, or with probability 0, get nothing. Empty when no label is among
    them. What no real server sends is read safely: a NaN or +inf logprob is
    dropped, one above 0 counts as 0 (probability 1), a token listed twice counts
    once, and no label's probability exceeds 1."""
    probs: dict[str, float] = {}
    seen = set()
    for token, logprob in top_logprobs:
        label = _as_label(token, labels) if isinstance(token, str) else None
        try:
            logprob = float(logprob)
        except (TypeError, ValueError, OverflowError):
            continue
        if label is None or token in seen or math.isnan(logprob) or logprob == math.inf:
            continue
        seen.add(token)
        p = math.exp(min(logprob, 0.0))
        if p > 0:
            probs[label] = min(1.0, probs.get(label, 0.0) + p)
    return probs
