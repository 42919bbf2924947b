"""EQ asked as EQ-Bench v2.1 asks it (SCORING.md, sections 1 and 7): the four
ratings alone, 60 new tokens, `*` and `#` stripped and names matched in any
case; --eq-revise brings back v2.0's first pass, critique and revision."""

import json
import re

import pytest
from click.testing import CliRunner
from support.fake_openai import responder_for

from support import tiny_models
from rys.search import probing
from rys.cli import cli
from rys.core.errors import RysError
from rys.search.extract import parse_ratings
from rys.search.results import Store
from rys.search.scorers import score_text
from rys.search.suites import resolve
from rys.search.suites.core import Item
from rys.search.suites.eq import without_revision
from rys.search.suites.loaders import load_eqbench
from rys.search.sweep import Sweep, SweepConfig

EMOTIONS = ["Remorseful", "Indifferent", "Affectionate", "Annoyed"]
GOT = {"Remorseful": 0, "Indifferent": 3, "Affectionate": 0, "Annoyed": 8}
ANSWER = "Remorseful: 0\nIndifferent: 3\nAffectionate: 0\nAnnoyed: 8"


@pytest.mark.parametrize("text, expected", [
    (ANSWER, GOT),
    ("Here are my scores:\n\n" + ANSWER + "\n\n[End of answer]", GOT),                 # chatter around them
    ("Your answer:\n" + ANSWER, GOT),                                                   # the prompt's last line echoed
    ("**Remorseful:** 0\n**Indifferent:** 3\n**Affectionate:** 0\n**Annoyed:** 8", GOT),  # markdown bold (v2.1)
    ("## Scores\n### Remorseful: 0\n### Indifferent: 3\n### Affectionate: 0\n### Annoyed: 8", GOT),
    ("remorseful: 0\nINDIFFERENT: 3\nAffectionate: 0\nannoyed: 8", GOT),               # any case (v2.1)
    ("1. Remorseful: 0\n2. Indifferent: 3\n3. Affectionate: 0\n4. Annoyed: 8", GOT),    # a numbered list
    ("- Remorseful: 0 (he never apologises)\n- Indifferent: 3\n- Affectionate: 0\n- Annoyed: 8/10", GOT),
    ("<think>Remorseful: 9</think>\n" + ANSWER, GOT),                                   # thinking is dropped
    (ANSWER.replace("Annoyed: 8", "Annoyed: 2\nAnnoyed: 8"), GOT),                      # a name twice: the last wins
    ("First pass scores:\nRemorseful: 5\nIndifferent: 5\nAffectionate: 5\nAnnoyed: 5\n\nCritique: too flat.\n\n"
     "Revised scores:\n" + ANSWER, GOT),                                                # v2.0 shape: the revision wins
    ("Remorseful: <score>\nIndifferent: <score>\nAffectionate: <score>\nAnnoyed: <score>", None),  # the template echoed
    ("Step: 1\n" + ANSWER, None),                                                       # a fifth pair
    (ANSWER.replace("Annoyed: 8", ""), None),                                           # an emotion missing
    (ANSWER.replace("Indifferent", "Apathetic"), None),                                 # a renamed emotion
    ("Remorseful: 0\nIndifferent: 0\nAffectionate: 0\nAnnoyed: 0", None),               # all zero (as EQ-Bench)
    (ANSWER.replace("Annoyed: 8", "Annoyed: -8"), None),                                # negative
    ("<think>" + ANSWER, None),                                                         # never finished thinking
    ("I'm sorry, I cannot rate the emotions of fictional people.", None),
])
def test_parse_ratings_real_looking_answers(text, expected):
    assert parse_ratings(text, EMOTIONS) == expected


def test_ratings_are_scored_as_eq_bench_v2():
    # SCORING.md's worked example: reference 0, 6, 0, 7; answer 0, 3, 0, 8 -> 8.75
    it = Item("e/1", "e", "q", dict(zip(EMOTIONS, (0, 6, 0, 7))), None, "emotions", "eqbench", "1")
    row = score_text(it, "**" + ANSWER.replace("\n", "\n**"))
    assert row["extracted"] == GOT and row["revised"] is None
    assert row["first"] == pytest.approx(8.75, abs=5e-3) and row["score"] == pytest.approx(87.5, abs=0.05)


# --- the prompt, its budget and its version --------------------------------------------

V2_PROMPT = (
    "\nYour task is to predict the likely emotional responses of a character in this dialogue:\n\nA: hi\nB: no.\n"
    "[End dialogue]\n\nAt the end of this dialogue, A would feel...\nRemorseful\nIndifferent\nAffectionate\nAnnoyed\n\n"
    "Give each of these possible emotions a score from 0-10 for the relative intensity that they are likely to be "
    "feeling each. Then critique your answer by thinking it through step by step. Finally, give your revised scores."
    "\n\nYou must output in the following format, including headings (of course, you should give your own scores), "
    "with no additional commentary:\n\nFirst pass scores:\nRemorseful: <score>\nIndifferent: <score>\n"
    "Affectionate: <score>\nAnnoyed: <score>\n\nCritique: <your critique here>\n\nRevised scores:\n"
    "Remorseful: <revised score>\nIndifferent: <revised score>\nAffectionate: <revised score>\n"
    "Annoyed: <revised score>\n\n[End of answer]\n\nRemember: zero is a valid score, meaning they are likely not "
    "feeling that emotion. You must score at least one emotion > 0.\n")


def test_without_revision_edits_the_prompt_as_eq_bench_v21():
    assert without_revision(V2_PROMPT) == (
        "\nYour task is to predict the likely emotional responses of a character in this dialogue:\n\nA: hi\nB: no.\n"
        "[End dialogue]\n\nAt the end of this dialogue, A would feel...\nRemorseful\nIndifferent\nAffectionate\n"
        "Annoyed\n\nGive each of these possible emotions a score from 0-10 for the relative intensity that they are "
        "likely to be feeling each.\n\nYou must output in the following format, including headings (of course, you "
        "should give your own scores), with no additional commentary:\n\nRemorseful: <score>\nIndifferent: <score>\n"
        "Affectionate: <score>\nAnnoyed: <score>\n\n\n[End of answer]\n\nRemember: zero is a valid score, meaning "
        "they are likely not feeling that emotion. You must score at least one emotion > 0.\n\nYour answer:\n")
    assert without_revision("Rate these: Angry, Sad.") is None


def eqbench_file(tmp_path, prompt=V2_PROMPT):
    ref = {"emotion1": "Remorseful", "emotion1_score": 0, "emotion2": "Indifferent", "emotion2_score": "6",
           "emotion3": "Affectionate", "emotion3_score": 0, "emotion4": "Annoyed", "emotion4_score": "7"}
    path = tmp_path / "questions.json"
    path.write_text(json.dumps({"1": {"prompt": prompt, "reference_answer_fullscale": ref}}))
    return path


def test_eqbench_loader_asks_v21_unless_told_to_revise(tmp_path):
    path = eqbench_file(tmp_path)
    off, on = load_eqbench(path), load_eqbench(path, revise=True)
    assert off.items[0].prompt == without_revision(V2_PROMPT) and on.items[0].prompt == V2_PROMPT
    assert (off.max_tokens, on.max_tokens) == (60, 600)
    assert (off.items[0].answer, on.items[0].answer) == ("emotions", "emotions_revised")
    assert off.version.endswith("+v2.1") and on.version.endswith("+v2.0") and off.version[:-5] == on.version[:-5]
    with pytest.raises(RysError, match="revision cannot be turned off; use --eq-revise"):
        load_eqbench(eqbench_file(tmp_path, "Rate: Remorseful, Indifferent, Affectionate, Annoyed"))


def test_eqbench_file_every_prompt_is_edited(datasets):
    s = load_eqbench(datasets / "eqbench" / "eq_bench_v2_questions_171.json")
    assert len(s.items) == 171
    for it in s.items:
        ask = it.prompt.split("[End dialogue]")[1]  # (a dialogue may say "critique" itself)
        assert "critique" not in ask.lower() and "revised" not in ask.lower() and "First pass" not in ask
        assert it.prompt.endswith("> 0.\n\nYour answer:\n")
        assert all(f"\n{e}: <score>\n" in it.prompt for e in it.reference)


# --- rys probe --eq-revise ------------------------------------------------------------

@pytest.mark.parametrize("flag, tokens, revised", [([], 60, False), (["--eq-revise"], 600, True)])
def test_probe_asks_eq_as_told(fake_openai, monkeypatch, flag, tokens, revised):
    monkeypatch.setattr(probing, "clock", lambda: 0.0)
    fake_openai.responder = responder_for(resolve("eq", limit=3, eq_revise=revised), "generate", "right")
    r = CliRunner().invoke(cli, ["probe", "--url", fake_openai.url, "--suite", "eq", "--limit", "3", *flag])
    assert r.exit_code == 0, r.output
    assert r.stdout == "eq                     100.0 [100.0, 100.0]  n=3  parsed 100%  tokens 15  0.0s\n"
    assert {b["max_tokens"] for b in fake_openai.requests} == {tokens}
    prompts = [b["messages"][-1]["content"] for b in fake_openai.requests]
    assert all(("Revised scores:" in p) == revised and p.endswith("Your answer:\n") != revised for p in prompts)


# --- rys sweep --eq-revise: part of what a score means ---------------------------------

def test_sweep_eq_revise_is_a_scoring_key(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 4)
    out = tmp_path / "out"
    Sweep(SweepConfig(model=str(model), blocks="0-1", suite="eq", limit=2), out)
    assert SweepConfig(model="m", eq_revise=True).scoring_identity()["eq_revise"] is True
    with pytest.raises(RysError, match=re.escape("scored differently (--eq-revise False -> True)")):
        Sweep(SweepConfig(model=str(model), blocks="0-1", suite="eq", limit=2, eq_revise=True), out)


def test_a_folder_of_eq_rows_asked_the_old_way_refuses_to_resume(tmp_path):
    model = tiny_models.write_model(tmp_path / "m.gguf", "llama", 4)
    out = tmp_path / "out"
    cfg = SweepConfig(model=str(model), blocks="0-1", suite="math.arith,eq", limit=2)
    Sweep(cfg, out)
    with Store(out) as store:  # as an older rys left it: no eq_revise key, eq rows of version 1
        store.set_meta("scoring", {k: v for k, v in store.get_meta("scoring").items() if k != "eq_revise"})
        store.put_item("baseline", "search", {"suite": "eq", "id": "eq/landlord", "version": "1", "score": 50.0,
                                              "parseable": True})
        store.put_item("baseline", "search", {"suite": "math.arith", "id": "a", "version": "1", "score": 1.0})
    with pytest.raises(RysError, match=re.escape("holds eq results of suite version '1', this sweep asks "
                                                 "version '1+v2.1'; choose another --out")):
        Sweep(cfg, out)
