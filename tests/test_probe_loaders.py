"""Loaders for the standard data sets in ../shared/datasets (read, never copied)."""

import json
import re

import pytest

from rys.core.errors import RysError
from rys.search.suites import resolve
from rys.search.suites.loaders import load_bbh, load_eqbench, load_gsm8k

BBH_TASKS = {
    "boolean_expressions": ("False", "True"),
    "causal_judgement": ("Yes", "No"),
    "date_understanding": "letters",
    "logical_deduction_five_objects": ("A", "B", "C", "D", "E"),
    "logical_deduction_three_objects": ("A", "B", "C"),
    "multistep_arithmetic_two": None,
    "navigate": ("Yes", "No"),
}


def test_gsm8k(datasets):
    s = load_gsm8k(datasets / "gsm8k" / "train.jsonl")
    assert (s.name, len(s.items), s.scoring) == ("gsm8k", 7473, "exact")
    first = s.items[0]
    assert first.prompt.startswith("Natalia sold clips to 48 of her friends")
    assert first.reference == 72 and first.answer == "number"
    assert all(isinstance(i.reference, int) for i in s.items)
    assert s.version.startswith("sha256:")


def test_gsm8k_sampling_is_seeded(datasets):
    spec = f"gsm8k={datasets / 'gsm8k' / 'train.jsonl'}"
    a, b, c = (resolve(spec, limit=25, seed=s).suites[0].items for s in (0, 0, 1))
    assert a == b and a != c and len(a) == 25


@pytest.mark.parametrize("task, labels", BBH_TASKS.items())
def test_bbh_tasks(datasets, task, labels):
    path = datasets / "bbh" / f"{task}.json"
    raw = json.loads(path.read_text())["examples"]
    s = load_bbh(path)
    assert s.name == f"bbh.{task}" and len(s.items) == len(raw)
    for it, ex in zip(s.items, raw):
        assert it.prompt == ex["input"]
        if labels is None:
            assert it.answer == "number" and it.reference == int(ex["target"])
        elif labels == "letters":
            assert it.choices == tuple(re.findall(r"^\(([A-Z])\)", ex["input"], re.M))
            assert f"({it.reference})" == ex["target"]
        else:
            assert it.choices == labels and it.reference in labels
            assert it.reference == ex["target"].strip("()")
    # the three-shot chain-of-thought prompt is found beside the task, without its canary line
    assert s.prefix.endswith("\n\nQ: ") and s.suffix == "\nA: Let's think step by step."
    assert "canary" not in s.prefix and "So the answer is" in s.prefix


def test_bbh_without_cot_prompt(datasets, tmp_path):
    task = tmp_path / "navigate.json"
    task.write_text((datasets / "bbh" / "navigate.json").read_text())
    s = load_bbh(task)
    assert "Q: " not in s.prefix and "So the answer is X." in s.prefix


def test_bbh_explicit_cot_path(datasets, tmp_path):
    task = tmp_path / "t.json"
    task.write_text((datasets / "bbh" / "navigate.json").read_text())
    cot = datasets / "bbh" / "navigate.cot.txt"
    s = resolve(f"bbh={task}:{cot}").suites[0]
    assert s.prefix.startswith(cot.read_text().split("-----\n", 1)[1].strip()[:40])


def test_eqbench(datasets):
    s = load_eqbench(datasets / "eqbench" / "eq_bench_v2_questions_171.json")
    assert (s.name, len(s.items), s.scoring) == ("eqbench", 171, "eqbench")
    first = s.items[0]
    assert first.id == "eqbench/1"
    # the full-scale reference (v2), scores given as numbers or strings in the file
    assert first.reference == {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7}
    assert "Robert would feel" in first.prompt


# What each loader says of a malformed file: message -> (loader, the file's content)
MALFORMED = {
    "x.txt:1 is not a GSM8K row": (load_gsm8k, '{"question": "q", "answer": "no marker"}\n'),
    "x.txt:1: no number after '####'": (load_gsm8k, '{"question": "q", "answer": "#### none"}\n'),
    "holds no GSM8K rows": (load_gsm8k, ""),
    "is not valid JSON": (load_bbh, "{not json"),
    "is not a BBH task file": (load_bbh, '{"examples": [{"input": "x"}]}'),
    "question 1 lacks a prompt or a full-scale reference answer": (load_eqbench, '{"1": {"prompt": "p"}}'),
    "is not an EQ-Bench questions file": (load_eqbench, "[]"),
}


@pytest.mark.parametrize("message", MALFORMED)
def test_malformed_files(tmp_path, message):
    loader, content = MALFORMED[message]
    path = tmp_path / "x.txt"
    path.write_text(content)
    with pytest.raises(RysError, match=re.escape(message)):
        loader(path)
