"""`rys report`: the Markdown report, its images and its reproduce commands."""

import importlib.util
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from support import rank_data as rd
from rys.cli import cli
from rys.search.ranking import rank
from rys.search.report import heatmap_grid, sweep_command, write_report

PNG = b"\x89PNG\r\n\x1a\n"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture()
def sweep(tmp_path):
    return rd.write_sweep(tmp_path / "sweep")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(folder, report text) of the known table, written once for the tests that only read it."""
    folder = rd.write_sweep(tmp_path_factory.mktemp("report") / "sweep")
    return folder, report_text(folder)


def report_text(folder, **kw):
    return write_report([folder], **kw).read_text()


# The ranking section of rank_data's table, written out by hand (see rank_data.py):
# scores and deltas are its sums over item counts; combined sums the z-scores of
# the deltas over the four ok candidates (population sd): for 0-3, math
# (0.15 - 0.0125) / 0.10095 + eq 10 / 7.0711 + reasoning (0.25 - 0.0625) / 0.20729
# = 1.362 + 1.414 + 0.905. Intervals that the items fix are written out (every
# item moved alike: [d, d]; one item of four differs: [0, 0.75]); the three
# that depend on the resamples are [CI], checked for their form only.
CI = "[CI]"
RANKING_SECTION = """\
## Ranking

| # | candidate | +layers | combined | math | delta math [95% CI] | eq | delta eq [95% CI] | reasoning | delta reasoning [95% CI] |
|---|---|---|---|---|---|---|---|---|---|
|  | baseline | +0 | -0.425 | 0.433 n=6 | (reference) | 60.0 n=3 | (reference) | 0.500 n=4 | (reference) |
| 1 | 0-3 | +4 | +3.681 | 0.583 n=6 | +0.150 [CI]* | 70.0 n=3 | +10.0 [+10.0,+10.0]* | 0.750 n=4 | +0.250 [+0.000,+0.750] |
| 2 | 2-3 | +2 | +1.111 | 0.467 n=6 | +0.033 [CI] | 60.0 n=3 | +0.0 [+0.0,+0.0] | 0.750 n=4 | +0.250 [+0.000,+0.750] |
| 3 | 2-5 | +4 | -0.425 | 0.433 n=6 | +0.000 [+0.000,+0.000] | 60.0 n=3 | +0.0 [+0.0,+0.0] | 0.500 n=4 | +0.000 [+0.000,+0.000] |
| 4 | 4-7 | +4 | -4.366 | 0.300 n=6 | -0.133 [CI]* | 50.0 n=3 | -10.0 [-10.0,-10.0]* | 0.250 n=4 | -0.250 [-0.750,+0.000] |

Not ranked:

- 6-7  failed  llama-server exited: out of memory
- 3-4  pruned  KL 0.91 > 0.5 from baseline
- 1-2  skipped  block 1-2 changes layer kinds; --layout interval cannot express it

Best per group, and the Pareto front:

- best math: 0-3 (+4 layers)  +0.150 [CI]*
- best eq: 0-3 (+4 layers)  +10.0 [+10.0,+10.0]*
- best reasoning: 2-3 (+2 layers)  +0.250 [+0.000,+0.750]
- pareto front (combined vs layers added): baseline (+0, -0.425), 2-3 (+2, +1.111), 0-3 (+4, +3.681)
"""


def test_report_holds_the_ranking_and_reproduce_commands(written):
    sweep, text = written
    pattern = re.escape(RANKING_SECTION).replace(re.escape(CI), r"\[[+-]\d\.\d{3},[+-]\d\.\d{3}\]")
    assert re.search(pattern, text), text
    assert ("```sh\n"
            "rys sweep /models/tiny.gguf --suite math,eq,reasoning --limit 4 --seed 0 --mode generate "
            "--block 4 --stride 2 --out sweeps/tiny\n"
            f"rys rank {sweep} --by combined --format md\n"
            "rys build /models/tiny.gguf 0-3\n"
            "```") in text


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib (the [plot] extra) is not installed")
def test_heatmaps_and_pareto_images(written):
    sweep, text = written
    assert (sweep / "report.md").read_text() == text  # the default place
    for name in ("report_math_delta.png", "report_eq_delta.png", "report_reasoning_delta.png", "report_pareto.png"):
        assert f"]({name})" in text
        assert (sweep / name).read_bytes().startswith(PNG)
    assert "Each cell is the delta of block I-J over 6 items; * marks an interval that excludes 0" in text
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]


def test_without_matplotlib_the_report_says_so(sweep, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    text = report_text(sweep)
    assert "matplotlib is not installed (`pip install 'rys[plot]'`), so the heatmaps were skipped." in text
    assert not list(sweep.glob("*.png")) and ".png)" not in text


def test_heatmap_grid_rows_are_starts_columns_ends(written):
    starts, ends, delta, sig = heatmap_grid(rank([written[0]]), "math")
    assert (starts, ends) == ([0, 2, 4], [3, 5, 7])
    want = np.array([[0.9 / 6, np.nan, np.nan],
                     [0.2 / 6, 0.0, np.nan],
                     [np.nan, np.nan, -0.8 / 6]])
    np.testing.assert_allclose(delta, want, rtol=0, atol=1e-12)
    assert sig.tolist() == [[True, False, False], [False, False, False], [False, False, True]]


def test_model_card_snippet(written):
    text = written[1]
    card = text[text.index("## Model card snippet (winner by combined)"):]
    # 0-3 repeats layers 0..3 once: 10 kB + 4 x 1 kB
    assert ("| File | Layers | Size |\n|---|---|---|\n"
            "| tiny.gguf | 8 | 10.0 KB |\n"
            "| tiny-rys_0-3.gguf | 12 | ~14.0 KB |") in card
    lines = card.splitlines()
    i = lines.index("### Probe scores (search items)")
    assert lines[i + 2] == "| Model | math | eq | reasoning |"
    assert lines[i + 4].startswith("| Base (8 layers) | 0.433 [") and "] n=6 | 60.0 [" in lines[i + 4]
    assert lines[i + 5].startswith("| rys_0-3 (12 layers) | 0.583 [") and lines[i + 5].endswith("] n=4 |")
    assert lines[i + 6].startswith("| delta (paired) | +0.150 [") and "| +10.0 [+10.0,+10.0]* |" in lines[i + 6]
    assert "its delta is biased upwards (selection)" in card


def test_holdout_section(sweep):
    with rd.Store(sweep) as s:
        for name, scores in (("baseline", [0.5, 0.5]), ("0-3", [0.7, 0.5])):
            for i, x in enumerate(scores):
                s.put_item(name, "holdout", rd.row("math.arith", f"h{i}", x, "partial"))
    text = report_text(sweep)
    section = text[text.index("## Hold-out re-measurement"):text.index("## Model card")]
    assert "| 0-3 | +4 | 0.600 n=2 | +0.100 [+0.000,+0.200] |" in section
    assert "| baseline | +0 | 0.500 n=2 | (reference) |" in section
    assert "### Probe scores (hold-out items)" in text


def test_sweep_command_from_config():
    assert sweep_command({"blocks": ["27-30", "28-31"], "keep_models": True, "prefilter": None,
                          "halving": False}, "my model.gguf") == \
        "rys sweep 'my model.gguf' --blocks 27-30,28-31 --keep-models"


def test_shards_give_one_sweep_command_each(tmp_path):
    a = rd.write_sweep(tmp_path / "a", ["baseline", "0-3", "2-5"], [], config={**rd.CONFIG, "shard": "1/2"})
    b = rd.write_sweep(tmp_path / "b", ["baseline", "4-7", "2-3"], [], config={**rd.CONFIG, "shard": "2/2"})
    text = write_report([a, b], tmp_path / "out" / "R.md").read_text()
    assert "--shard 1/2\n" in text and "--shard 2/2\n" in text
    assert f"rys rank {a} {b} --by combined --format md\n" in text


def run(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)], catch_exceptions=False)


def test_cli_report(sweep, tmp_path):
    out = tmp_path / "docs" / "REPORT.md"
    r = run(sweep, "-o", out, "--by", "eq")
    assert (r.exit_code, r.stdout) == (0, f"{out}\n")
    assert "## Model card snippet (winner by eq)" in out.read_text()
    if HAVE_MPL:
        assert (tmp_path / "docs" / "REPORT_eq_delta.png").read_bytes().startswith(PNG)


def test_cli_report_errors(tmp_path):
    r = run(tmp_path / "nothing")
    assert (r.exit_code, r.output) == (1, f"Error: {tmp_path / 'nothing'}: no such folder\n")
