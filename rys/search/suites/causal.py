"""The `causal` generator (reasoning.causal): counterfactual questions about
small rule-based scenes.

A scene (data in the suite file, probes/reasoning.causal.toml) says when an
effect happens: when all of its causes hold, or when at least one does. The item states
which causes held and asks whether the effect would have happened had one
cause gone the other way; the answer is computed from the rule."""

from __future__ import annotations

import random

from .reasoning import yes_no

# The data a causal suite holds: scenes of an effect and its causes, each
# phrased as a rule, as having happened or not, and as a counterfactual.
_EFFECT = {"rule": str, "yes": str, "no": str, "question": str}
_CAUSE = {"rule": str, "yes": str, "no": str, "cf_yes": str, "cf_no": str}
CAUSAL_DATA = {"scenes": [{"id": str, "setting": str, "effect": _EFFECT, "causes": [_CAUSE]}]}


def outcome(rule: str, held: list[bool]) -> bool:
    return all(held) if rule == "all" else any(held)


def join(parts: list[str], word: str) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def make_causal(rng: random.Random, data: dict):
    scenes = data["scenes"]
    want = rng.random() < 0.5  # balance Yes and No answers
    for _ in range(1000):
        scene = rng.choice(scenes)
        causes = rng.sample(scene["causes"], rng.randint(2, 3))
        rule = rng.choice(["all", "any"])
        held = [rng.random() < 0.6 for _ in causes]
        flip = rng.randrange(len(causes))
        changed = [not h if i == flip else h for i, h in enumerate(held)]
        if outcome(rule, changed) == want:
            break
    effect = scene["effect"]
    which = "all of these are true" if rule == "all" else "at least one of these is true"
    text = (f"{scene['setting']} {effect['rule']} exactly when {which}: "
            + "; ".join(c["rule"] for c in causes) + ". "
            + f"Yesterday, {join([c['yes'] if h else c['no'] for c, h in zip(causes, held)], 'and')}. "
            + f"So {effect['yes'] if outcome(rule, held) else effect['no']}. "
            + f"Suppose instead that {causes[flip]['cf_no'] if held[flip] else causes[flip]['cf_yes']}, "
            + f"and everything else had been the same: {effect['question']}?")
    meta = {"scene": scene["id"], "rule": rule, "held": held, "flip": flip,
            "causes": [scene["causes"].index(c) for c in causes]}
    return yes_no(text), "Yes" if want else "No", ["Yes", "No"], meta

