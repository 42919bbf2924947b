"""The `date`, `logic` and `navigation` generators (reasoning.date,
reasoning.logic, reasoning.navigation): multiple-choice items whose answers
are computed (by date arithmetic, brute force over orderings, and walking
the path). Each takes (rng, the suite file's data) and returns (prompt,
reference, option labels, meta)."""

from __future__ import annotations

import datetime as dt
import itertools
import random

LETTERS = "ABCDEFGH"
MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]


def lettered(question: str, options: list[str]) -> str:
    lines = [f"{LETTERS[i]}. {text}" for i, text in enumerate(options)]
    return question + "\nOptions:\n" + "\n".join(lines)


def yes_no(question: str) -> str:
    return question + "\nOptions:\n- Yes\n- No"


# --- dates -----------------------------------------------------------------

def mdy(d: dt.date) -> str:
    return d.strftime("%m/%d/%Y")


def shift_months(d: dt.date, months: int) -> dt.date:
    """Calendar month shift; only used on days <= 28, so never clamped."""
    index = d.year * 12 + d.month - 1 + months
    return d.replace(year=index // 12, month=index % 12 + 1)


def make_date(rng: random.Random, _data: dict):
    today = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 80 * 365))
    if rng.random() < 0.5:  # month and year questions need a day every month has
        today = today.replace(day=min(today.day, 28))
    written = mdy if rng.random() < 0.5 else (lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}")
    k = rng.randint(2, 30)
    anchor = rng.choice([
        f"Today is {written(today)}.",
        f"Yesterday was {written(today - dt.timedelta(days=1))}.",
        f"Tomorrow is {written(today + dt.timedelta(days=1))}.",
        f"{k} days ago it was {written(today - dt.timedelta(days=k))}.",
    ])
    n = rng.randint(2, 40)
    w = rng.randint(2, 8)
    asks = [(f"the date {n} days from today", dt.timedelta(days=n)),
            (f"the date {n} days ago", dt.timedelta(days=-n)),
            (f"the date {w} weeks from today", dt.timedelta(weeks=w)),
            ("the date tomorrow", dt.timedelta(days=1)),
            ("the date yesterday", dt.timedelta(days=-1))]
    if today.day <= 28:
        asks += [("the date one month from today", 1), ("the date one year ago", -12)]
    phrase, offset = rng.choice(asks)
    answer = today + offset if isinstance(offset, dt.timedelta) else shift_months(today, offset)
    options = _date_distractors(rng, today, answer, offset)
    rng.shuffle(options)
    question = f"{anchor} What is {phrase} in MM/DD/YYYY?"
    ref = LETTERS[options.index(mdy(answer))]
    return lettered(question, options), ref, LETTERS[: len(options)], {"today": today.isoformat()}


def _date_distractors(rng, today, answer, offset) -> list[str]:
    """The right date and four plausible wrong ones (off by a day, a month or
    a year, the offset taken the wrong way, day and month swapped)."""
    wrong = [answer + dt.timedelta(days=1), answer - dt.timedelta(days=1),
             answer.replace(year=answer.year + 1) if answer.day <= 28 else answer + dt.timedelta(days=365),
             answer.replace(year=answer.year - 1) if answer.day <= 28 else answer - dt.timedelta(days=365),
             today + dt.timedelta(days=7), answer + dt.timedelta(days=10)]
    if isinstance(offset, dt.timedelta):
        wrong.append(today - offset)
    if answer.day <= 12 and answer.day != answer.month:
        wrong.append(answer.replace(month=answer.day, day=answer.month))
    options = [mdy(answer)]
    for d in rng.sample(wrong, len(wrong)):
        if mdy(d) not in options and len(options) < 5:
            options.append(mdy(d))
    return options


# --- ordering puzzles --------------------------------------------------------

# The data a logic suite holds: frames, each a kind of things and the objects
# (at least five) a puzzle's three to five things are drawn from.
LOGIC_DATA = {"frames": [{"things": str, "objects": [str]}]}
ORDINALS = ["first", "second", "third", "fourth", "fifth"]


def clue_text(clue: tuple) -> str:
    kind, a, b = clue
    if kind == "left_of":
        return f"The {a} is somewhere to the left of the {b}."
    if kind == "right_of":
        return f"The {a} is somewhere to the right of the {b}."
    if kind == "from_left":
        return f"The {a} is the {ORDINALS[b]} from the left."
    return f"The {a} is the {ORDINALS[b]} from the right."


def clue_holds(clue: tuple, order: tuple) -> bool:
    kind, a, b = clue
    if kind == "left_of":
        return order.index(a) < order.index(b)
    if kind == "right_of":
        return order.index(a) > order.index(b)
    if kind == "from_left":
        return order.index(a) == b
    return order.index(a) == len(order) - 1 - b


def solutions(objects: list[str], clues: list[tuple]) -> list[tuple]:
    return [p for p in itertools.permutations(objects) if all(clue_holds(c, p) for c in clues)]


def make_logic(rng: random.Random, data: dict):
    frame = rng.choice(data["frames"])
    n = rng.randint(3, 5)
    objects = rng.sample(frame["objects"], n)
    order = tuple(rng.sample(objects, n))
    true_clues = [("left_of", a, b) for a in objects for b in objects if a != b and clue_holds(("left_of", a, b), order)]
    true_clues += [("right_of", a, b) for a in objects for b in objects if a != b and clue_holds(("right_of", a, b), order)]
    true_clues += [("from_left", a, order.index(a)) for a in objects]
    true_clues += [("from_right", a, n - 1 - order.index(a)) for a in objects]
    # Add true clues until one ordering remains, then drop the redundant ones:
    # the puzzle then needs every clue it states.
    rng.shuffle(true_clues)
    clues = []
    while len(solutions(objects, clues)) > 1:
        clues.append(true_clues.pop())
    for clue in list(clues):
        rest = [c for c in clues if c != clue]
        if len(solutions(objects, rest)) == 1:
            clues = rest
    pos = rng.randrange(n)
    listed = ", ".join(f"the {o}" for o in rng.sample(objects, n))
    text = (f"There are {n} {frame['things']}: {listed} (listed in no particular order). "
            + " ".join(clue_text(c) for c in clues)
            + f" Which one is the {ORDINALS[pos]} from the left?")
    options = [f"The {o}" for o in objects]
    ref = LETTERS[objects.index(order[pos])]
    return lettered(text, options), ref, LETTERS[:n], {"order": list(order)}


# --- navigation ----------------------------------------------------------------

FACING = {"forward": 1j, "backward": -1j, "left": -1, "right": 1}


def make_navigation(rng: random.Random, _data: dict):
    """Walk instructions; half the items return to the start by construction."""
    back = rng.random() < 0.5
    if rng.random() < 0.5:
        steps, pos = _face_forward_walk(rng, back)
        intro, extra = "Always face forward.", "Take 1 step forward."
    else:
        steps, pos = _turning_walk(rng, back)
        intro, extra = "Start facing north.", "Take 1 step."
    if not back and pos == 0:
        steps.append(extra)  # the random walk closed by chance: one more step leaves the start
    text = ("If you follow these instructions, do you end up back at the starting point? "
            + intro + " " + " ".join(steps))
    return yes_no(text), "Yes" if back else "No", ["Yes", "No"], {"returns": back}


def _face_forward_walk(rng, back: bool):
    moves = [(rng.choice(list(FACING)), rng.randint(1, 9)) for _ in range(rng.randint(2, 5))]
    pos = sum(FACING[d] * k for d, k in moves)
    if back:  # cancel the displacement axis by axis
        if pos.real:
            moves.append(("left" if pos.real > 0 else "right", int(abs(pos.real))))
        if pos.imag:
            moves.append(("backward" if pos.imag > 0 else "forward", int(abs(pos.imag))))
        rng.shuffle(moves)  # facing never changes, so order is free
        pos = 0
    return [f"Take {k} step{'s' if k > 1 else ''} {d}." for d, k in moves], pos


def _turning_walk(rng, back: bool):
    heading, pos, steps = 1j, 0, []
    for _ in range(rng.randint(2, 5)):
        turn = rng.choice(["Turn left.", "Turn right.", "Turn around.", None])
        if turn:
            steps.append(turn)
            heading *= {"Turn left.": 1j, "Turn right.": -1j, "Turn around.": -1}[turn]
        k = rng.randint(1, 9)
        steps.append(f"Take {k} step{'s' if k > 1 else ''}.")
        pos += heading * k
    if back and pos != 0:
        # Turn to face each axis of the way home and walk it.
        for target in (complex(-pos.real, 0), complex(0, -pos.imag)):
            if target == 0:
                continue
            want = target / abs(target)
            turn = {1: None, 1j: "Turn left.", -1j: "Turn right.", -1: "Turn around."}[want / heading]
            if turn:
                steps.append(turn)
            heading = want
            k = int(abs(target))
            steps.append(f"Take {k} step{'s' if k > 1 else ''}.")
        pos = 0
    return steps, pos
