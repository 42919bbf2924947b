"""`rys report`: a Markdown report of a sweep, with PNG heatmaps beside it.

Sections: how to reproduce every number, the ranking (rank_format's Markdown),
a start x end heatmap of each probe group's delta, the Pareto view, the
hold-out re-measurement, and a model-card snippet for the winner. matplotlib
is optional: without it the report says so and has no images. Every file is
written to a temporary name and renamed, so an interruption leaves no half file.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from . import presets
from ..surgery import spec as specs
from ..core.errors import RysError
from ..core.files import write_atomic
from .bootstrap import bootstrap_ci
from .ranking import Ranking, rank
from .ranking_output import as_md, delta_cell, fmt, holdout_rows, md_table, missing, ranking_rows
from .results import BASELINE, HOLDOUT, SEARCH
from .scorers import suite_score
from .stats import unit_scoring
from .sweep_config import SweepConfig, option_name
from ..core.text import human_bytes

SWEEP_DEFAULTS = {f.name: f.default for f in fields(SweepConfig)}


# -- files ---------------------------------------------------------------------------------

def _count(n) -> str:
    return "-" if missing(n) else str(n)


def _size(n) -> str:
    return "-" if missing(n) else human_bytes(n)


# -- heatmaps ------------------------------------------------------------------------------

def heatmap_grid(r: Ranking, unit: str) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """(starts, ends, delta, sig) for the measured single blocks I-J:
    delta[a, b] is the delta of block starts[a]-ends[b] (NaN where not measured)."""
    cells = {}
    for row in r.ranked.to_dict("records"):
        block = specs.single_block(row["spec"])
        if block and not missing(row.get(f"{unit}_delta")):
            cells[block] = (row[f"{unit}_delta"], bool(row[f"{unit}_sig"]))
    starts = sorted({i for i, _ in cells})
    ends = sorted({j for _, j in cells})
    delta = np.full((len(starts), len(ends)), np.nan)
    sig = np.zeros_like(delta, dtype=bool)
    for (i, j), (d, s) in cells.items():
        delta[starts.index(i), ends.index(j)] = d
        sig[starts.index(i), ends.index(j)] = s
    return starts, ends, delta, sig


def _figure_module():
    """matplotlib's Figure (no pyplot: no global backend state), or None if not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _save_png(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buf.getvalue())


def plot_heatmap(Figure, grid, unit: str, scale: int, path: Path) -> None:
    starts, ends, delta, sig = grid
    fig = Figure(figsize=(1.2 + 0.55 * len(ends), 1.0 + 0.45 * len(starts)))
    ax = fig.add_subplot()
    lim = np.nanmax(np.abs(delta)) or 1.0  # symmetric colour scale: white is "no change"
    ax.set_facecolor("0.85")  # grey: not measured (white is a delta of 0)
    im = ax.imshow(np.ma.masked_invalid(delta), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(ends)), [str(j) for j in ends])
    ax.set_yticks(range(len(starts)), [str(i) for i in starts])
    ax.set_xlabel("end layer J")
    ax.set_ylabel("start layer I")
    ax.set_title(f"{unit}: delta vs baseline (* interval excludes 0)")
    for a, b in zip(*np.nonzero(~np.isnan(delta))):
        ax.text(b, a, fmt(delta[a, b], scale, True) + ("*" if sig[a, b] else ""), ha="center", va="center",
                fontsize=7, color="white" if abs(delta[a, b]) > 0.6 * lim else "black")
    fig.colorbar(im, ax=ax, label="delta")
    _save_png(fig, path)


def plot_pareto(Figure, r: Ranking, path: Path) -> None:
    col = "combined" if r.by == "combined" else f"{r.by}_delta"
    t = r.ranked if r.ranked.empty else pd.concat([r.table[r.table["candidate"] == BASELINE], r.ranked])
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    ax.scatter(t["layers_added"], t[col].astype(float), color="0.6", label="candidates")
    front = t[t["pareto"]].sort_values("layers_added")
    ax.plot(front["layers_added"], front[col].astype(float), "o-", color="C3", label="Pareto front")
    for row in front.to_dict("records"):
        ax.annotate(row["candidate"], (row["layers_added"], row[col]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layers added")
    ax.set_ylabel(col)
    ax.legend(fontsize=7)
    _save_png(fig, path)


# -- text sections ---------------------------------------------------------------------------

def _model_path(r: Ranking) -> str:
    config, model = r.results.config or {}, r.results.model or {}
    return str(config.get("model") or model.get("path") or model.get("file") or "MODEL.gguf")


def sweep_command(config: dict | None, model: str) -> str:
    """The command line that wrote a result folder, rebuilt from the options in
    its meta "config": its preset and what differs from it, or every option."""
    if not config:
        return f"# (no config recorded) rys sweep {shlex.quote(model)} ..."
    words = ["rys", "sweep", model]
    preset = _preset_values(config.get("preset"))
    if preset is not None:
        words += ["--preset", config["preset"]]
    for key, value in config.items():
        if key in ("model", "preset") or value is None or value is False:
            continue
        if preset is not None and preset.get(key, SWEEP_DEFAULTS.get(key)) == value:
            continue
        if value is True:
            words.append(option_name(key))
        else:
            words += [option_name(key), ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return shlex.join(words)


def _preset_values(name: str | None) -> dict | None:
    """The options a preset sets, or None when there is none or it cannot be read
    here (then every option is spelled out instead)."""
    if not name:
        return None
    try:
        return presets.load_preset(name).options
    except RysError:
        return None


def winner(r: Ranking) -> dict | None:
    top = r.ranked
    return None if top.empty else top.iloc[0].to_dict()


def reproduce(r: Ranking) -> list[str]:
    model = _model_path(r)
    folders = [shlex.quote(str(f)) for f in r.results.folders]
    lines = [sweep_command(c, model) for c in r.results.configs]
    lines.append(f"rys rank {' '.join(folders)} --by {r.by} --format md")
    w = winner(r)
    if w is not None:
        lines.append(shlex.join(["rys", "build", model, w["spec"]]))
    return lines


def _base_name(r: Ranking) -> str:
    return Path(_model_path(r)).name


def _label(spec: str) -> str:
    """The name `rys build` gives a candidate: rys_27-30."""
    return specs.parse(spec).label


def _built_name(r: Ranking, spec: str) -> str:
    return f"{Path(_base_name(r)).stem}-{_label(spec)}.gguf"


def _layer_bytes(r: Ranking, cand: str) -> float | None:
    """Estimated file size: the base file plus one copy of every repeated layer
    (needs meta model.layer_bytes, one entry per original layer)."""
    model = r.results.model or {}
    size, per_layer = model.get("size"), model.get("layer_bytes")
    c = r.results.candidates[cand]
    if size is None:
        return None
    if cand == BASELINE:
        return size
    if not per_layer or not c.path:
        return None
    counts = np.bincount(c.path, minlength=len(per_layer))
    return size + sum(b * (k - 1) for b, k in zip(per_layer, counts) if k > 1)


def _score_cell(r: Ranking, cand: str, unit: str, stage_rows: pd.DataFrame, prefix: str, seed: int) -> str:
    """'0.412 [0.300, 0.520] n=40': score, its 95% bootstrap interval, n."""
    rows = stage_rows[(stage_rows["candidate"] == cand) & (stage_rows["group"] == unit)]
    if rows.empty:
        return "-"
    scoring = unit_scoring(rows, unit)
    items = list(rows["row"])
    score = suite_score(scoring, items)[0]
    lo, hi = bootstrap_ci(scoring, items, seed, f"{prefix}{cand}/{unit}")
    scale = r.scales[unit]
    return f"{fmt(score, scale)} [{fmt(lo, scale)}, {fmt(hi, scale)}] n={len(items)}"


def model_card(r: Ranking, seed: int = 0) -> list[str]:
    w = winner(r)
    if w is None:
        return ["No candidate was measured, so there is no winner to describe."]
    t = r.table.set_index("candidate", drop=False)
    base = t.loc[BASELINE]
    out = ["### Files", ""]
    out += md_table(["File", "Layers", "Size"], [
        [_base_name(r), _count(base["layers"]), _size(_layer_bytes(r, BASELINE))],
        [_built_name(r, w["spec"]), _count(w["layers"]), "~" + _size(_layer_bytes(r, w["candidate"]))]])
    out += ["", "The second size is estimated: the base file plus one copy of each repeated layer."]
    stages = [("search", r.results.stage(SEARCH), "")]
    if r.holdout:
        stages.append(("hold-out", r.results.stage(HOLDOUT), "holdout_"))
    for name, rows, prefix in stages:
        units = r.groups if not prefix else [u for u in r.groups if u in r.holdout]
        out += ["", f"### Probe scores ({name} items)", ""]
        body = []
        for cand, label in ((BASELINE, f"Base ({_count(base['layers'])} layers)"),
                            (w["candidate"], f"{_label(w['spec'])} ({_count(w['layers'])} layers)")):
            cells = [_score_cell(r, cand, u, rows, prefix, seed) for u in units]
            body.append([label] + cells)
        body.append(["delta (paired)"] + [delta_cell(t.loc[w["candidate"]], u, r.scales[u], prefix) for u in units])
        out += md_table(["Model"] + units, body)
    out += ["", "Each score: 95% bootstrap interval over items in brackets, n = items. The delta's interval "
            "is paired (the same items resampled for both models)."]
    if not r.holdout:
        out += ["The winner was chosen on these very items, so its delta is biased upwards (selection); "
                "re-measure it on items the search never used before trusting it."]
    return out


def _heatmap_section(r: Ranking, out: Path, Figure) -> list[str]:
    lines = ["## Delta heatmaps (start x end)", ""]
    if Figure is None:
        return lines + ["matplotlib is not installed (`pip install 'rys[plot]'`), so the heatmaps were skipped."]
    for unit in r.groups:
        grid = heatmap_grid(r, unit)
        if not grid[0]:
            lines += [f"No single-block candidates measured on {unit}.", ""]
            continue
        png = out.with_name(f"{out.stem}_{unit}_delta.png")
        plot_heatmap(Figure, grid, unit, r.scales[unit], png)
        n = r.ranked[f"{unit}_n"].dropna()
        n = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        lines += [f"### {unit}", "", f"![{unit} delta by block start and end]({png.name})", "",
                  f"Rows: first layer I of the repeated block; columns: last layer J. Each cell is the delta of "
                  f"block I-J over {n} items; * marks an interval that excludes 0; grey: not "
                  "measured.", ""]
    return lines


def _pareto_section(r: Ranking, out: Path, Figure) -> list[str]:
    header, rows = ranking_rows(r)
    front = [row for row in rows if row[1] in r.pareto]
    lines = ["## Pareto view", "", f"Candidates no other beats on {r.by} with as few or fewer layers added:", ""]
    lines += md_table(header, front)
    if Figure is not None:
        png = out.with_name(f"{out.stem}_pareto.png")
        plot_pareto(Figure, r, png)
        lines += ["", f"![{r.by} vs layers added]({png.name})"]
    return lines


def _holdout_section(r: Ranking) -> list[str]:
    lines = ["## Hold-out re-measurement", ""]
    if not r.holdout:
        return lines + ["No hold-out items in these results: every delta above was measured on the items the "
                        "candidates were selected on, so the best ones are biased upwards."]
    return lines + ["Items the search never used, so these deltas carry no selection bias:", ""] + \
        md_table(*holdout_rows(r))


def render_report(r: Ranking, out: Path, seed: int = 0) -> str:
    """The report's Markdown; writes the images beside `out`."""
    Figure = _figure_module()
    model = r.results.model or {}
    counts = r.table["status"].value_counts()
    lines = [f"# rys sweep report: {_base_name(r)}", "",
             f"{len(r.table)} candidates ({', '.join(f'{n} {s}' for s, n in counts.items())}) from "
             f"{', '.join(str(f) for f in r.results.folders)}; model {model.get('file', _base_name(r))}, "
             f"{_size(model.get('size'))}. Written by rys {__version__}.", "",
             "## Reproduce", "", "```sh", *reproduce(r), "```", "", "## Ranking", "", as_md(r, holdout=False).rstrip(), ""]
    lines += _heatmap_section(r, out, Figure) + [""] + _pareto_section(r, out, Figure) + [""]
    lines += _holdout_section(r) + ["", f"## Model card snippet (winner by {r.by})", ""] + model_card(r, seed)
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def write_report(folders: list[Path], out: Path | None = None, by: str = "combined", seed: int = 0) -> Path:
    r = rank(folders, by, seed=seed)
    out = Path(out) if out else Path(folders[0]) / "report.md"
    write_atomic(out, render_report(r, out, seed).encode())
    return out
