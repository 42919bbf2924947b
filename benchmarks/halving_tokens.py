"""Benchmark: probe tokens spent by `rys sweep --halving` vs an exhaustive sweep.

Runs the same sweep of SmolLM2-135M-Instruct twice on the same items (the
`make demo` settings): exhaustively, and with successive halving. Prints the
tokens (prompt + completion) each spent, their ratio, and whether both reach
the same top candidate. Re-uses finished folders, so an interrupted run
resumes.

Usage: python benchmarks/halving_tokens.py [--work DIR] [--limit 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from rys.assets import smollm2_path
from rys.rank import rank
from rys.results import read_rows


def sweep(model: Path, out: Path, limit: int, halving: bool) -> None:
    cmd = [sys.executable, "-m", "rys.cli", "sweep", str(model), "--block", "8", "--stride", "4",
           "--suite", "math,reasoning", "--mode", "choice", "--limit", str(limit), "--out", str(out), "-q"]
    subprocess.run(cmd + (["--halving"] if halving else []), check=True)


def tokens(out: Path) -> int:
    return sum((r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in read_rows(out))


def winner(out: Path) -> str:
    records = [r for r in rank([out]).to_records() if r["candidate"] != "baseline" and r["status"] == "ok"]
    return records[0]["candidate"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("sweeps/bench-halving"))
    ap.add_argument("--limit", type=int, default=4)
    args = ap.parse_args()
    model = smollm2_path()
    full, halved = args.work / "exhaustive", args.work / "halving"
    sweep(model, full, args.limit, halving=False)
    sweep(model, halved, args.limit, halving=True)
    t_full, t_half = tokens(full), tokens(halved)
    w_full, w_half = winner(full), winner(halved)
    print(f"exhaustive: {t_full:7d} tokens, top candidate {w_full}")
    print(f"halving   : {t_half:7d} tokens, top candidate {w_half}")
    print(f"token ratio (halving / exhaustive): {t_half / t_full:.2f}   target <= 0.33; "
          f"same winner: {'yes' if w_full == w_half else 'no'}")


if __name__ == "__main__":
    main()
