"""EQ suites: the EQ-Bench v2 prompt shape and the two ways of asking it.

EQ-Bench v2.1 (the default) asks for the four ratings alone; v2.0
(--eq-revise) asks for a first pass, a critique and revised ratings. The
written eq suite and the EQ-Bench questions file (loaders.load_eqbench) are
both asked this way."""

from __future__ import annotations

from .core import Item

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


def eq_item(suite: str, key: str, prompt: str, reference: dict, version: str, revise: bool) -> Item:
    return Item(f"{suite}/{key}", suite, prompt, reference, None, EQ_ANSWER[revise], "eqbench", version)


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
