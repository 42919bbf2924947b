"""A Ranking as text: an aligned table, Markdown, CSV or JSON (strings, never printed here)."""

from __future__ import annotations

import json
from .bootstrap import N_BOOT
from .ranking import Ranking, plain
from .results import BASELINE

SIG = "*"


def missing(value) -> bool:
    return plain(value) is None


def fmt(value, scale: int, signed: bool = False) -> str:
    """0-1 scores with 3 decimals, EQ-Bench's 0-100 with 1; '-' for no value."""
    if missing(value):
        return "-"
    spec = ("+" if signed else "") + (".1f" if scale == 100 else ".3f")
    return format(value, spec)


def score_cell(row, unit: str, scale: int, prefix: str = "") -> str:
    n = row.get(f"{prefix}{unit}_n")
    if missing(n):
        return "-"
    return f"{fmt(row[f'{prefix}{unit}'], scale)} n={n}"


def delta_cell(row, unit: str, scale: int, prefix: str = "") -> str:
    """Delta, its 95% interval and the significance mark: '+0.094 [+0.064,+0.127]*'."""
    key = f"{prefix}{unit}"
    if row["candidate"] == BASELINE:
        return "(reference)"
    if missing(row.get(f"{key}_n")):
        return "-"
    lo, hi = fmt(row[f"{key}_ci_low"], scale, True), fmt(row[f"{key}_ci_high"], scale, True)
    mark = SIG if plain(row[f"{key}_sig"]) is True else ""
    return f"{fmt(row[f'{key}_delta'], scale, True)} [{lo},{hi}]{mark}"


def _layers(row) -> str:
    return f"+{row['layers_added']}"


def ranking_rows(r: Ranking) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table: baseline and ranked candidates."""
    header = ["#", "candidate", "+layers", "combined"]
    for u in r.units:
        header += [u, f"delta {u} [95% CI]"]
    rows = []
    for row in r.table.to_dict("records"):
        if row["status"] != "ok":
            continue
        cells = ["" if missing(row["rank"]) else str(row["rank"]), row["candidate"], _layers(row),
                 fmt(row["combined"], 1, True)]
        for u in r.units:
            cells += [score_cell(row, u, r.scales[u]), delta_cell(row, u, r.scales[u])]
        rows.append(cells)
    return header, rows


def holdout_rows(r: Ranking) -> tuple[list[str], list[list[str]]]:
    header = ["candidate", "+layers"]
    for u in r.holdout:
        header += [f"hold-out {u}", f"delta {u} [95% CI]"]
    rows = []
    for row in r.table.to_dict("records"):
        if any(not missing(row.get(f"holdout_{u}_n")) for u in r.holdout):
            cells = [row["candidate"], _layers(row)]
            for u in r.holdout:
                cells += [score_cell(row, u, r.scales[u], "holdout_"), delta_cell(row, u, r.scales[u], "holdout_")]
            rows.append(cells)
    return header, rows


def unranked_lines(r: Ranking) -> list[str]:
    return [f"{row['candidate']}  {row['status']}  {row['reason'] or ''}".rstrip()
            for row in r.unranked.to_dict("records")]


def best_lines(r: Ranking) -> list[str]:
    t = r.table.set_index("candidate", drop=False)
    out = []
    for u, cand in r.best.items():
        row = t.loc[cand]
        out.append(f"best {u}: {cand} ({_layers(row)} layers)  {delta_cell(row, u, r.scales[u])}")
    return out


def pareto_line(r: Ranking) -> str:
    t = r.table.set_index("candidate")
    col = "combined" if r.by == "combined" else f"{r.by}_delta"
    scale = 1 if r.by == "combined" else r.scales[r.by]
    front = ", ".join(f"{c} (+{t.at[c, 'layers_added']}, {fmt(t.at[c, col], scale, True)})" for c in r.pareto)
    return f"pareto front ({'combined' if r.by == 'combined' else r.by + ' delta'} vs layers added): {front}"


def legend(r: Ranking, mark: str = SIG) -> str:
    return (f"{mark} the 95% paired bootstrap interval of the delta ({N_BOOT} resamples of the items both "
            "answered) excludes 0. n = items scored; combined = sum of per-group z-scores of the deltas "
            f"({', '.join(r.groups)}); ranked by {r.by}; search-stage items only.")


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) if i in (1,) else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header)] + [line(r) for r in rows]


def as_table(r: Ranking) -> str:
    out = _grid(*ranking_rows(r))
    if r.holdout:
        out += ["", "hold-out re-measurement (items the search never used):"]
        out += ["  " + x for x in _grid(*holdout_rows(r))]
    if len(r.unranked):
        out += ["", "not ranked:"] + ["  " + x for x in unranked_lines(r)]
    out += [""] + best_lines(r) + [pareto_line(r), "", legend(r)]
    return "\n".join(out) + "\n"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: s.replace("|", "\\|")
    return (["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def as_md(r: Ranking, holdout: bool = True) -> str:
    """Markdown; the report shows the hold-out table in a section of its own (holdout=False)."""
    out = md_table(*ranking_rows(r))
    if r.holdout and holdout:
        out += ["", "Hold-out re-measurement (items the search never used):", ""] + md_table(*holdout_rows(r))
    if len(r.unranked):
        out += ["", "Not ranked:", ""] + [f"- {x}" for x in unranked_lines(r)]
    out += ["", "Best per group, and the Pareto front:", ""] + [f"- {x}" for x in best_lines(r) + [pareto_line(r)]]
    return "\n".join(out + ["", legend(r, f"`{SIG}`:")]) + "\n"


def render(r: Ranking, form: str) -> str:
    """`form` is one of the CLI's --format choices: table, csv, json, md."""
    if form == "json":
        return json.dumps(r.to_records(), indent=2) + "\n"
    if form == "csv":
        return r.table.to_csv(index=False)
    if form == "md":
        return as_md(r)
    return as_table(r)
