"""Suites as files: the built-in ones ask exactly what they asked before they
were files, a user adds a suite (or a group) by adding a file, and a broken
file is a one-line error naming it."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fake_openai import responder_for, right_text, wrong_text

from rys.search import probing
from rys.cli import cli
from rys.core.errors import RysError
from rys.search.suites import ALIASES, resolve
from rys.search.suites.catalog import packaged_dir

README = Path(__file__).parent.parent / "probes" / "README.md"
# A suite file that is all right; tests break it one key at a time.
GOOD = {"version": '"1"', "group": '"quiz"', "scorer": '"exact"', "answer": '"number"', "max_tokens": "16"}
ITEM = '\n[[items]]\nid = "one"\nprompt = "1 + 1?"\nreference = 2\n'


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in an empty folder with no RYS_PROBES, seconds frozen at 0.0."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RYS_PROBES", raising=False)
    monkeypatch.setattr(probing, "clock", lambda: 0.0)


def example() -> str:
    """The complete suite file of probes/README.md (the suite `trivia`)."""
    return re.search(r"```toml\n(.*?)```", README.read_text(), re.S).group(1)


def suite_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def toml(**changes) -> str:
    """GOOD with keys changed (None drops a key), then one written item."""
    keys = {**GOOD, **changes}
    return "".join(f"{k} = {v}\n" for k, v in keys.items() if v is not None) + ITEM


def probe(*args):
    return CliRunner().invoke(cli, ["probe", *args])


# --- the built-in suites ask what they asked before ------------------------------------

# sha256 over repr(Selection.groups) and repr(Suite) (name, version, scoring,
# max_tokens, prefix, suffix, source and every item: id, prompt, reference,
# choices, answer kind, scoring, version, meta) of resolve(spec, limit, seed,
# eq_revise) for every limit in (None, 3, 16, 40), seed in (0, 1, 7) and
# eq_revise in (False, True). Measured on the code before the suites became
# files (rys/search/suites/*.py + rys/probes_data/*.json, commit 3bf3777) with this
# very function, and unchanged after: sweep folders of that code still resume.
DIGESTS = {
    "math": "5c642e22ef4e98e51ede980a1c6822ba5629b5b247e4e4ab5bce1712608c068f",
    "eq": "ce9e2e6dcb08db8dbf9f0647daf9e7dcf57eee449b5373a16aba65ee265cd1ce",
    "reasoning": "f9051ff6be799ba5fa5f8e7453463c7198b239451e9d6916b739bb0cfc082211",
    "math.arith": "a31de0d51170a81533d5a204e589e0f41f953a9d89492bcf0de43f8f0a4ee435",
    "math.word": "5873238e7a2729a4dfffb4d054464ef61960a3691da98c91d1d478cb20cc6287",
    "reasoning.causal": "fa35138c4b590619698f8b09e32b5b5d22a08b68fcfba586d34a876ceacfc503",
    "reasoning.date": "499e85d5344d46710344398fb035ee1fda17aac8e04c45ddd99758760b3ae676",
    "reasoning.logic": "a599b3e8c26c1e69fb8aa5328207adae6e43dc72ad8863644786c87a21b8c223",
    "reasoning.navigation": "6eb127ef85982170ba95e28c243265d85803fe695449c9e40cba52b6bf88412c",
    "reasoning.gsm8k": "b0ebc3959f73e3f79243bf41611d51643a00dc4d02bf4a3db5f3ff2d7f407467",
    "math,eq,reasoning": "cad53eb5866d6ad0cc30eba0973365f888de44550baf2151e328e6041b979e40",
}


def fingerprint(spec: str) -> str:
    h = hashlib.sha256()
    for limit in (None, 3, 16, 40):
        for seed in (0, 1, 7):
            for revise in (False, True):
                sel = resolve(spec, limit, seed, revise)
                h.update(repr(sel.groups).encode())
                for s in sel.suites:
                    h.update(repr(s).encode())
    return h.hexdigest()


@pytest.mark.parametrize("spec", DIGESTS)
def test_builtin_suites_are_unchanged(spec):
    assert fingerprint(spec) == DIGESTS[spec]


# --- a user adds a suite by adding a file ------------------------------------------------

def test_a_suite_file_in_probes_is_asked_and_scored(fake_openai, tmp_path):
    suite_file(tmp_path / "probes", "trivia", example())
    fake_openai.responder = _mixed(resolve("trivia"), right_ids={"trivia/capital"})
    result = probe("--url", fake_openai.url, "--suite", "trivia", "--out", "rows.jsonl")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("trivia                 0.500 [") and "n=2  parsed 100%" in result.stdout
    rows = [json.loads(line) for line in Path("rows.jsonl").read_text().splitlines()]
    assert [(r["id"], r["score"], r["extracted"]) for r in rows] == [("trivia/capital", 1.0, "Canberra"),
                                                                     ("trivia/planet", 0.0, "A")]
    assert fake_openai.requests[0]["max_tokens"] == 64
    assert fake_openai.requests[0]["messages"][-1]["content"].startswith("Answer the question. Finish with")


def _mixed(selection, right_ids: set[str]):
    """Answers the items of `right_ids` right and every other item wrong."""
    items = {probing.user_message(s, it, "generate"): it for s in selection.suites for it in s.items}

    def respond(payload):
        item = items[payload["messages"][-1]["content"]]
        return right_text(item) if item.id in right_ids else wrong_text(item)

    return respond


def test_suite_folders_from_rys_probes(fake_openai, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    suite_file(a, "trivia", example())
    suite_file(b, "sums", toml(group='"sums"'))
    monkeypatch.setenv("RYS_PROBES", f"{a}{os.pathsep}{b}")
    sel = resolve("trivia,sums")
    fake_openai.responder = responder_for(sel, "generate", "right")
    result = probe("--url", fake_openai.url, "--suite", "trivia,sums")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("trivia                 1.000 [1.000, 1.000]  n=2  parsed 100%  tokens 10  0.0s\n"
                             "sums                   1.000 [1.000, 1.000]  n=1  parsed 100%  tokens 5  0.0s\n")
    assert [s.source for s in sel.suites] == [str(a / "trivia.toml"), str(b / "sums.toml")]


def test_a_group_in_a_user_file_makes_an_alias(fake_openai, tmp_path):
    suite_file(tmp_path / "probes", "quiz.a", toml(order="2"))
    suite_file(tmp_path / "probes", "quiz.b", toml(order="1"))
    fake_openai.responder = responder_for(resolve("quiz"), "generate", "right")
    result = probe("--url", fake_openai.url, "--suite", "quiz")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("quiz.b                 1.000 [1.000, 1.000]  n=1  parsed 100%  tokens 5  0.0s\n"
                             "quiz.a                 1.000 [1.000, 1.000]  n=1  parsed 100%  tokens 5  0.0s\n"
                             "quiz                   1.000 [1.000, 1.000]  n=2  parsed 100%  tokens 10  0.0s\n")


def test_a_group_in_a_user_file_joins_a_builtin_alias(tmp_path):
    suite_file(tmp_path / "probes", "reasoning.quiz", toml(group='"reasoning"'))
    sel = resolve("reasoning", limit=2)
    assert sel.groups == {"reasoning": ALIASES["reasoning"] + ["reasoning.quiz"]}
    assert [s.name for s in sel.suites] == ALIASES["reasoning"] + ["reasoning.quiz"]


def test_unknown_suite_lists_the_files(tmp_path):
    suite_file(tmp_path / "probes", "trivia", example())
    result = probe("--url", "http://127.0.0.1:9", "--suite", "nosuch")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("Error: unknown suite 'nosuch'; choose from math, eq, reasoning, trivia, math.arith, "
                             "math.word, reasoning.causal, reasoning.date, reasoning.logic, reasoning.navigation, "
                             "reasoning.gsm8k, or gsm8k=FILE.jsonl, bbh=FILE.json, eqbench=FILE.json\n")


def test_the_same_file_found_twice_counts_once(tmp_path, monkeypatch):
    suite_file(tmp_path / "probes", "trivia", example())
    monkeypatch.setenv("RYS_PROBES", f"{tmp_path / 'probes'}{os.pathsep}{packaged_dir()}")
    assert [s.name for s in resolve("trivia,eq").suites] == ["trivia", "eq"]


def test_a_user_file_may_not_take_a_builtin_name(tmp_path):
    ours = suite_file(tmp_path / "probes", "math.arith", toml())
    with pytest.raises(RysError) as e:
        resolve("eq")
    assert str(e.value) == f"suite math.arith is defined twice: {packaged_dir() / 'math.arith.toml'} and {ours}"


def test_two_user_files_of_one_name_are_an_error(tmp_path, monkeypatch):
    here = suite_file(tmp_path / "probes", "trivia", example())
    there = suite_file(tmp_path / "more", "trivia", example())  # the same text, another file
    monkeypatch.setenv("RYS_PROBES", str(tmp_path / "more"))
    with pytest.raises(RysError) as e:
        resolve("eq")
    assert str(e.value) == f"suite trivia is defined twice: {here} and {there}"


def test_rys_probes_must_name_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_PROBES", str(tmp_path / "nowhere"))
    with pytest.raises(RysError) as e:
        resolve("math")
    assert str(e.value) == f"RYS_PROBES names {tmp_path / 'nowhere'}, which is not a folder"


# --- a broken file is a one-line error naming it ------------------------------------------

def test_a_malformed_file_is_one_line_and_exit_1(tmp_path):
    path = suite_file(tmp_path / "probes", "quiz", toml(version=None))
    result = probe("--url", "http://127.0.0.1:9", "--suite", "math")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"Error: {path}: missing key 'version'\n"


@pytest.mark.parametrize("text, problem", [
    ("version = \n", ": not valid TOML (Invalid value (at line 1, column 11))"),
    (toml(max_tokens='"many"'), ": max_tokens must be an integer"),
    (toml(version="1"), ": version must be a string"),
    (toml(scorer='"fuzzy"'), ": unknown scorer 'fuzzy'; choose from partial, exact, eqbench"),
    (toml(answer='"emotions"'), ": scorer 'exact' cannot score answer 'emotions'"),
    (toml(answer='"label"').replace("reference = 2", 'reference = "A"'), ": missing key 'items[0].choices'"),
    (toml(answer='"label"'), ": items[0].reference must be a string"),
    (toml(max_tokens="0"), ": max_tokens must be at least 1"),
    (toml(answer='"ratings"'), ": unknown answer 'ratings'; choose from number, label, text, emotions"),
    (toml(scorer='"eqbench"', answer='"emotions"', max_tokens_revised="0"), ": max_tokens_revised must be at least 1"),
    (toml(max_tokens_revised="600"), ": max_tokens_revised goes with answer 'emotions', and only there"),
    (toml(group='"a,b"'), ": group must be letters, digits, '.', '_' or '-'"),
    (toml(colour='"red"'), ": unknown key 'colour'"),
    (toml(generator='"arith"'), ": give either items or a generator"),
    (toml(max_tokens="true"), ": max_tokens must be an integer"),
    (toml() + ITEM, ": items[1]: id 'one' is used twice"),
    (toml().replace("reference = 2", 'reference = "two"'), ": items[0].reference must be a number"),
    (toml(answer='"label"').replace("reference = 2", 'reference = "C"\nchoices = ["A", "B"]'),
     ": items[0]: reference 'C' is not one of its choices"),
    ("".join(f"{k} = {v}\n" for k, v in GOOD.items()) + 'generator = "poem"\n',
     ": unknown generator 'poem'; choose from arith, word_problems, causal, date, logic, navigation"),
    ("".join(f"{k} = {v}\n" for k, v in {**GOOD, "answer": '"label"'}.items()) + 'generator = "arith"\n',
     ": generator 'arith' makes 'number' items, not 'label'"),
    ("".join(f"{k} = {v}\n" for k, v in GOOD.items()) + 'generator = "word_problems"\n[data]\nnames = []\n',
     ": data.names must be a non-empty list"),
    ("".join(f"{k} = {v}\n" for k, v in GOOD.items()) + 'generator = "arith"\ndata_from = "nosuch"\n',
     ": data_from 'nosuch' must name a suite with its own data for generator 'arith'"),
    (toml(group='"math.arith"'), ": group 'math.arith' is the name of another suite ("),
])
def test_malformed_suite_files(tmp_path, text, problem):
    path = suite_file(tmp_path / "probes", "quiz", text)
    with pytest.raises(RysError) as e:
        resolve("quiz")
    assert str(e.value).startswith(f"{path}{problem}")
    assert "\n" not in str(e.value)


def test_generator_data_it_cannot_use_is_an_error_naming_the_file(tmp_path):
    data = ('generator = "word_problems"\n[data]\nnames = ["Ann"]\n[[data.templates]]\nid = "t"\n'
            'text = "{name} has {a} and {b}."\nvars = {a = [1, 3]}\nanswer = "a + b"\n')
    path = suite_file(tmp_path / "probes", "quiz", "".join(f"{k} = {v}\n" for k, v in GOOD.items()) + data)
    with pytest.raises(RysError) as e:
        resolve("quiz")
    assert str(e.value) == (f"{path}: generator 'word_problems' cannot use its data (ValueError: "
                            "unsupported expression in word problem template: 'a + b')")


def test_a_bad_file_name_is_an_error(tmp_path):
    path = suite_file(tmp_path / "probes", "my quiz", toml())
    with pytest.raises(RysError, match=re.escape(f"{path}: a suite file's name must be letters")):
        resolve("math")
