"""Benchmark: probe tokens spent by `rys sweep --halving` vs an exhaustive sweep.

Runs the same sweep of SmolLM2-135M-Instruct twice on the same items (the
seed's second pass: 4-layer blocks, stride 1, 27 candidates; the four
multiple-choice reasoning suites read from option probabilities):
exhaustively, and with successive halving.
Prints the tokens (prompt + completion) each spent, their ratio, and where
halving's top candidate ranks in the exhaustive ranking. Re-uses finished
folders, so an interrupted run resumes.

Usage: python benchmarks/halving_tokens.py [--work DIR] [--limit 32] [--suite reasoning] [--block 4 --stride 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rys.llamacpp.assets import smollm2_path
from rys.search.ranking import rank
from rys.search.results import read


def sweep(model: Path, out: Path, args, halving: bool) -> None:
    cmd = [sys.executable, "-m", "rys.cli", "sweep", str(model), "--block", str(args.block), "--stride", str(args.stride),
           "--suite", args.suite, "--mode", "choice", "--limit", str(args.limit), "--out", str(out), "-q"]
    subprocess.run(cmd + (["--halving"] if halving else []), check=True)


def tokens(out: Path) -> int:
    return sum((r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in read([out]).items["row"])


def ranking(out: Path) -> list[str]:
    """Candidates best first, as `rys rank` orders them (baseline left out)."""
    return [r["candidate"] for r in rank([out]).to_records() if r["candidate"] != "baseline" and r["status"] == "ok"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("sweeps/bench-halving"))
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--suite", default="reasoning.causal,reasoning.date,reasoning.logic,reasoning.navigation")
    ap.add_argument("--block", type=int, default=4)
    ap.add_argument("--stride", type=int, default=1)
    args = ap.parse_args()
    model = smollm2_path()
    full, halved = args.work / "exhaustive", args.work / "halving"
    sweep(model, full, args, halving=False)
    sweep(model, halved, args, halving=True)
    t_full, t_half = tokens(full), tokens(halved)
    r_full, r_half = ranking(full), ranking(halved)
    print(f"{len(r_full)} candidates, suite {args.suite}, limit {args.limit}, choice mode")
    print(f"exhaustive: {t_full:7d} tokens, top candidates {', '.join(r_full[:3])}")
    print(f"halving   : {t_half:7d} tokens, top candidates {', '.join(r_half[:3])}")
    place = r_full.index(r_half[0]) + 1
    print(f"token ratio (halving / exhaustive): {t_half / t_full:.2f}   target <= 0.33; "
          f"halving's winner is #{place} of {len(r_full)} in the exhaustive ranking")


if __name__ == "__main__":
    main()
