"""Suites read from the standard data sets given by path (GSM8K jsonl, a
BIG-Bench Hard task, the EQ-Bench v2 questions).

Loaded sets keep their own prompts and are scored the way their benchmarks
score them; the project never ships them. Their instructions are those of
the built-in suites that mirror them: GSM8K is asked with the prefix of
reasoning.gsm8k, a BBH task without its chain-of-thought prompt with the
multiple-choice prefix of the reasoning suites (read from reasoning.date)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ...core.errors import RysError
from ..extract import parse_number
from .core import Item, Suite
from .eq import CRITIQUE, EQ_MAX_TOKENS, END_OF_ANSWER, eq_item, eq_version, without_revision
from .catalog import packaged_file


def _read(path: Path, what: str) -> str:
    if not path.is_file():
        raise RysError(f"{what} file not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RysError(f"{path} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise RysError(f"cannot read {path}: {e.strerror}") from None


def _version(text: str) -> str:
    """A loaded set is versioned by its content: same file, same version."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _json(path: Path, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RysError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except (ValueError, RecursionError) as e:  # an integer of 5,000 digits; nesting 100,000 deep
        raise RysError(f"{path} is not JSON rys can read ({e})") from None


def load_gsm8k(path: Path, name: str = "gsm8k") -> Suite:
    """GSM8K jsonl: {"question", "answer" ending in "#### N"}, exact match of N."""
    text = _read(path, "gsm8k")
    version = _version(text)
    items = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, answer = row["question"], parse_number(row["answer"].rsplit("####", 1)[1])
            if not isinstance(question, str):
                raise TypeError
        except (ValueError, KeyError, IndexError, AttributeError, TypeError, RecursionError):
            raise RysError(f"{path}:{lineno} is not a GSM8K row (question, answer ending in '#### N')") from None
        if answer is None:
            raise RysError(f"{path}:{lineno}: no number after '####'")
        items.append(Item(f"{name}/{lineno}", name, question, answer, None, "number", "exact", version))
    if not items:
        raise RysError(f"{path} holds no GSM8K rows")
    prefix = packaged_file("reasoning.gsm8k").prefix
    return Suite(name, version, tuple(items), "exact", max_tokens=400, prefix=prefix, source=str(path))


OPTION_LETTER = re.compile(r"^\(([A-Z])\)\s", re.M)


def _bbh_labels(inp: str, targets: set[str]) -> tuple[str, ...] | None:
    """Option labels of a BBH question: its "(A) ..." lines, its "- Yes" style
    lines, or, for tasks without listed options (boolean_expressions), the
    task's few distinct targets."""
    letters = OPTION_LETTER.findall(inp)
    if letters:
        return tuple(letters)
    if "Options:" in inp:
        dashed = re.findall(r"^- (.+?)\s*$", inp.split("Options:", 1)[1], re.M)
        if dashed:
            return tuple(dashed)
    if len(targets) <= 3 and all(parse_number(t) is None for t in targets):
        return tuple(sorted(targets))
    return None


def _cot_text(path: Path) -> str:
    """A BBH chain-of-thought prompt file without its canary header."""
    text = _read(path, "BBH chain-of-thought prompt")
    head, sep, rest = text.partition("\n-----\n")
    return (rest if sep else text).strip()


def _find_cot(task: Path) -> Path | None:
    """Beside the task: TASK.cot.txt, or cot-prompts/TASK.txt as in the BBH repo."""
    for cand in (task.with_name(task.stem + ".cot.txt"), task.parent / "cot-prompts" / f"{task.stem}.txt",
                 task.parent.parent / "cot-prompts" / f"{task.stem}.txt"):
        if cand.is_file():
            return cand
    return None


def load_bbh(path: Path, cot: Path | None = None) -> Suite:
    """A BIG-Bench Hard task, scored by exact match of what follows
    "the answer is"; with its 3-shot chain-of-thought prompt when one is found."""
    text = _read(path, "BBH task")
    data = _json(path, text)
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list) or not examples or not all(
            isinstance(e, dict) and isinstance(e.get("input"), str) and "target" in e for e in examples):
        raise RysError(f"{path} is not a BBH task file ({{'examples': [{{'input', 'target'}}]}})")
    name = f"bbh.{path.stem}"
    cot = cot or _find_cot(path)
    version = _version(text + (_read(cot, "BBH chain-of-thought prompt") if cot else ""))
    targets = {str(e["target"]).strip() for e in examples}
    items = []
    for i, ex in enumerate(examples):
        target = str(ex["target"]).strip()
        labels = _bbh_labels(ex["input"], targets)
        if labels:
            ref, answer = target.strip("()"), "label"
        elif parse_number(target) is not None:
            ref, answer = parse_number(target), "number"
        else:
            ref, answer = target, "text"
        items.append(Item(f"{name}/{i}", name, ex["input"], ref, labels, answer, "exact", version))
    if cot:
        prefix, suffix, max_tokens = _cot_text(cot) + "\n\nQ: ", "\nA: Let's think step by step.", 512
    else:
        prefix, suffix, max_tokens = packaged_file("reasoning.date").prefix, "", 256
    return Suite(name, version, tuple(items), "exact", max_tokens, prefix, suffix, source=str(path))


def load_eqbench(path: Path, name: str = "eqbench", revise: bool = False) -> Suite:
    """The EQ-Bench v2 questions file: id -> prompt, reference_answer_fullscale.
    Asked as EQ-Bench v2.1 asks by default (revision off: the prompt edited as
    `without_revision` says), or as stored with `revise` (v2.0)."""
    text = _read(path, "eqbench")
    data, version = _json(path, text), eq_version(_version(text), revise)
    if not isinstance(data, dict) or not data:
        raise RysError(f"{path} is not an EQ-Bench questions file (id -> {{prompt, reference_answer_fullscale}})")
    items = []
    for qid, q in data.items():
        try:
            ref = q["reference_answer_fullscale"]
            scores = {ref[f"emotion{k}"]: int(ref[f"emotion{k}_score"]) for k in range(1, 5)}
            prompt = q["prompt"]
            if not isinstance(prompt, str) or not all(isinstance(e, str) for e in scores) \
                    or len({e.lower() for e in scores}) != 4:
                raise TypeError
        except (KeyError, TypeError, ValueError, OverflowError):
            raise RysError(f"{path}: question {qid} lacks a prompt or a full-scale reference answer "
                           "with four distinct emotions") from None
        if not revise:
            prompt = without_revision(prompt)
            if prompt is None:
                raise RysError(f"{path}: question {qid} lacks EQ-Bench's English '{CRITIQUE}' ... "
                               f"'{END_OF_ANSWER}' placeholders, so its revision cannot be turned off; use --eq-revise")
        items.append(eq_item(name, qid, prompt, scores, version, revise))
    return Suite(name, version, tuple(items), "eqbench", max_tokens=EQ_MAX_TOKENS[revise], source=str(path))
