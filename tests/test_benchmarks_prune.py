"""The pruning benchmarks' own arithmetic: the text split (calibration and
evaluation never share a character), the verdict against random, and the
memory benchmark's checkpoint size and bound. The benchmarks themselves are
run by hand (README, "The torch path"), not as tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prune_table = _load("prune_table")
prune_memory = _load("prune_memory")

WIKI = " \n = First = \n \n alpha beta . \n" + " = = Section = = \n gamma . \n" * 3 + \
       " \n = Second = \n \n delta epsilon . \n \n = Third = \n \n zeta eta theta iota kappa . \n"


def test_split_is_a_partition_at_an_article_title():
    calib, evaluation = prune_table.split_text(WIKI)
    assert calib + evaluation == WIKI  # every character in exactly one part
    assert calib and evaluation
    assert evaluation.startswith(" = ") and evaluation.splitlines()[0] in (" = Second = ", " = Third = ")
    assert " = = Section = = " not in evaluation.splitlines()[0]  # a section title is not an article boundary


def test_split_picks_the_title_nearest_the_middle():
    text = " = A = \n" + "x\n" * 100 + " = B = \n" + "y\n" * 100 + " = C = \n" + "z\n" * 10
    calib, evaluation = prune_table.split_text(text)
    assert evaluation.startswith(" = B = ")


def test_split_without_titles_cuts_at_a_line_break():
    text = "one line\n" * 10
    calib, evaluation = prune_table.split_text(text)
    assert calib + evaluation == text and calib.endswith("\n") and evaluation
    with pytest.raises(ValueError):
        prune_table.split_text("no line break at all")


def test_split_of_the_real_text(tmp_path):
    wiki = prune_table.WIKITEXT
    if not wiki.exists():
        pytest.skip(f"{wiki} not here")
    info = prune_table.write_split(wiki, tmp_path)
    calib = (tmp_path / "calib.txt").read_text(encoding="utf-8")
    evaluation = (tmp_path / "eval.txt").read_text(encoding="utf-8")
    assert calib + evaluation == wiki.read_text(encoding="utf-8")
    assert 0.45 < info["cut_at_char"] / info["chars"] < 0.55
    # no article in both halves
    titles = lambda t: {line for line in t.splitlines() if prune_table.ARTICLE.fullmatch("\n" + line + "\n")}
    assert titles(calib) and titles(evaluation) and not titles(calib) & titles(evaluation)


def _row(config: str, criterion: str, kld: float, err: float = 0.01, ppl: float = 20.0) -> dict:
    return {"config": config, "criterion": criterion,
            "eval": {"kld_mean": kld, "kld_mean_err": err, "ppl_candidate": ppl}}


def test_verdict_counts_only_separated_wins():
    rows = [_row("heads", "random", 1.0), _row("heads", "activation", 0.5), _row("heads", "wanda", 0.97),
            _row("heads", "magnitude", 1.5)]
    lines = prune_table.verdict(rows)
    assert lines[0].startswith("heads: activation beats random: KL 0.500 vs 1.000 (x0.50)")
    assert "wanda ties random" in lines[0] and "magnitude loses to random" in lines[0]
    assert "activation 1, wanda 0, magnitude 0" in lines[-1]


def test_memory_benchmark_checkpoint_is_at_least_1_5_gb_and_the_bound_adds_up():
    cfg = prune_memory.llama_config(10, 2048, 8192, 16, 4, 49152)
    b = prune_memory.bound(cfg, 16384)
    assert b["file_bytes"] >= 1.5e9
    assert b["largest_layer"] == 2 * (2 * 2048 * 2048 + 2 * 512 * 2048 + 3 * 2048 * 8192 + 2 * 2048)
    assert b["embeddings"] == 2 * 2 * 49152 * 2048
    assert b["hidden_cache"] == 16384 * 2048 * 4
    assert b["bound"] == int(1.5 * (b["largest_layer"] + b["embeddings"]) + b["calibration_buffers"])
