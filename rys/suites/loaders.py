"""Suites read from files: the built-in EQ items, and the standard data sets
given by path (GSM8K jsonl, a BIG-Bench Hard task, the EQ-Bench v2 questions).

Loaded sets keep their own prompts and are scored the way their benchmarks
score them; the project never ships them."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

from ..errors import RysError
from ..extract import parse_number
from .core import Item, Suite
from .mathgen import WORD_PREFIX
from .reasoning import MC_PREFIX

# EQ-Bench's completion limits (SCORING.md, sections 1 and 7): 60 new tokens for
# the four ratings of v2.1 (revision off, the default), 600 for first pass,
# critique and revision (v2.0, --eq-revise).
EQ_MAX_TOKENS = {False: 60, True: 600}
# Which EQ-Bench prompt an EQ suite's version stands for: the version changes
# with it, so results asked the two ways are never pooled as one.
EQ_FORMAT = {False: "v2.1", True: "v2.0"}
EQ_ANSWER = {False: "emotions", True: "emotions_revised"}
# EQ-Bench v2's English wording, edited out when revision is off (SCORING.md, section 1).
REVISION_ASK = " Then critique your answer by thinking it through step by step. Finally, give your revised scores."
CRITIQUE, END_OF_ANSWER = "Critique: <your critique here>", "[End of answer]"


def eq_version(base: str, revise: bool) -> str:
    return f"{base}+{EQ_FORMAT[revise]}"


def eq_prompt(character: str, dialogue: list[str], emotions: list[str], revise: bool = False) -> str:
    """An EQ-Bench v2 shaped prompt in rys's own words: dialogue and four
    emotions, then the four ratings alone (v2.1) or a first pass, a critique
    and a revision (v2.0, `revise`)."""
    first = "\n".join(f"{e}: <score>" for e in emotions)
    revised = "\n".join(f"{e}: <revised score>" for e in emotions)
    if revise:
        ask = ("Rate each of these emotions from 0 to 10 for how intensely the character is likely to feel it. "
               "Then critique your ratings, thinking it through step by step. Finally, give your revised ratings.\n\n"
               "Answer in exactly this format, headings included, with your own numbers in place of the "
               "placeholders and nothing else:\n\n"
               f"First pass scores:\n{first}\n\nCritique: <your critique here>\n\nRevised scores:\n{revised}\n\n")
    else:
        ask = ("Rate each of these emotions from 0 to 10 for how intensely the character is likely to feel it.\n\n"
               "Answer in exactly this format, with your own numbers in place of the placeholders and nothing else:\n\n"
               f"{first}\n\n")
    return (
        "\nYour task is to predict how a character in this dialogue is likely to feel.\n\n"
        + "\n".join(dialogue) + "\n[End dialogue]\n\n"
        + f"At the end of this dialogue, {character} would feel...\n" + "\n".join(emotions) + "\n\n"
        + ask + "[End of answer]\n\n"
        "Remember: zero is allowed and means the emotion is likely absent. At least one emotion must score above zero.\n"
        + ("" if revise else "\nYour answer:\n")
    )


def without_revision(prompt: str) -> str | None:
    """An EQ-Bench v2 prompt as v2.1 sends it by default (SCORING.md, section 1):
    without the sentence asking for a critique and a revision, without the
    `First pass scores:` heading, with everything from the critique placeholder
    up to `[End of answer]` cut, and `Your answer:` appended. None when the
    prompt lacks the English placeholders (another language, another shape)."""
    prompt = prompt.replace(REVISION_ASK, "").replace("First pass scores:\n", "")
    cut = prompt.find(CRITIQUE)
    end = prompt.find(END_OF_ANSWER, cut) if cut >= 0 else -1
    if end < 0:
        return None
    return prompt[:cut] + "\n" + prompt[end:] + "\nYour answer:\n"


def builtin_eq(name: str = "eq", revise: bool = False) -> Suite:
    data = json.loads((resources.files("rys") / "probes_data" / "eq.json").read_text(encoding="utf-8"))
    version = eq_version(data["version"], revise)
    items = []
    for it in data["items"]:
        names = [e["name"] for e in it["emotions"]]
        ref = {e["name"]: int(e["reference"]) for e in it["emotions"]}
        prompt = eq_prompt(it["character"], it["dialogue"], names, revise)
        items.append(Item(f"{name}/{it['id']}", name, prompt, ref, None, EQ_ANSWER[revise], "eqbench", version))
    return Suite(name, version, tuple(items), "eqbench", max_tokens=EQ_MAX_TOKENS[revise])


# --- files given by path ----------------------------------------------------------

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
    return Suite(name, version, tuple(items), "exact", max_tokens=400, prefix=WORD_PREFIX, source=str(path))


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
        prefix, suffix, max_tokens = MC_PREFIX, "", 256
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
        items.append(Item(f"{name}/{qid}", name, prompt, scores, None, EQ_ANSWER[revise], "eqbench", version))
    return Suite(name, version, tuple(items), "eqbench", max_tokens=EQ_MAX_TOKENS[revise], source=str(path))
