"""Benchmark: what structured pruning costs SmolLM2-135M-Instruct, per criterion (the README's table).

One run, every row measured the same way, through rys's own commands:

  1. wiki.test.raw is cut at the article boundary nearest its middle:
     calibration text = the first half, evaluation text = the second half
     (no character in both; `split_text`).
  2. `rys convert` the SmolLM2 GGUF (Q4_1, the test asset) -> HF (f32); the
     unpruned checkpoint converted back (`rys convert --outtype f16`) is the
     base every row is compared with.
  3. Rows: base; query heads (`--heads 0.25`), MLP (`--mlp 0.15 --multiple
     128`), both; each with --criterion activation, wanda, magnitude, random.
     `rys prune` -> `rys convert --outtype f16` -> `rys quantize Q8_0` (size).
  4. Per row: `rys eval BASE-f16 ROW-f16 --text EVAL --chunks C --json`
     (perplexity, KL(base || row) mean and 99th percentile, same top token:
     pruning alone, no quantization in between); on the Q8_0 file (what one
     would serve, and twice as fast as f16 here): `rys probe ROW-Q8_0
     --suite math,reasoning.causal,reasoning.date,reasoning.logic,
     reasoning.navigation --limit N --mode choice --json` (math generates;
     the four reasoning suites are read from option probabilities and pooled
     here as "reasoning"; reasoning.gsm8k is left out: SmolLM2-135M scores 0
     on it and it generates 384 tokens per item, half the probe's time), and
     decode speed: llama-server (1 slot, rys.search.serving.server as `rys serve` runs it)
     generating 256 tokens with ignore_eos, 5 times after a warm-up, the
     median of its own `timings.predicted_per_second` (prompt speed beside).

Everything lands in --work (default sweeps/prune-table/, git-ignored): one
JSON per row (`rows/NAME.json`, written after every stage, so a killed run
resumes at the stage it was in; a row whose `done` is set is skipped),
`table.md` and `results.json` at the end. The 2 cores here are shared: read
tokens per second as rough, and KL/perplexity (deterministic) as the signal.

Usage: python benchmarks/prune_table.py [--work DIR] [--chunks 60] [--limit 20] [--calib-tokens 16384]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RYS = Path(sys.executable).parent / "rys"
WIKITEXT = Path("/work/shared/datasets/wikitext2/wiki.test.raw")
CRITERIA = ("activation", "wanda", "magnitude", "random")
# name -> rys prune options (None: the base, not pruned)
CONFIGS = {
    "heads": ["--heads", "0.25"],
    "mlp": ["--mlp", "0.15", "--multiple", "128"],
    "both": ["--heads", "0.25", "--mlp", "0.15", "--multiple", "128"],
}
PROBE_SUITES = "math,reasoning.causal,reasoning.date,reasoning.logic,reasoning.navigation"
REASONING = ("reasoning.causal", "reasoning.date", "reasoning.logic", "reasoning.navigation")
ARTICLE = re.compile(r"\n = [^=\n][^\n]* = \n")  # a wikitext article title line (level 1)


# --------------------------------------------------------------------------
# The text: calibration and evaluation from different halves


def split_text(text: str) -> tuple[str, str]:
    """(calibration, evaluation): text cut at the article title nearest its middle.

    calibration + evaluation == text, so no character is in both; the
    evaluation part starts with its article's title line. Without any title
    line, the cut is at the newline nearest the middle."""
    middle = len(text) // 2
    cuts = [m.start() + 1 for m in ARTICLE.finditer(text)] or [i + 1 for i, c in enumerate(text) if c == "\n"]
    cuts = [c for c in cuts if 0 < c < len(text)]
    if not cuts:
        raise ValueError("text has no line break to cut at")
    cut = min(cuts, key=lambda c: abs(c - middle))
    return text[:cut], text[cut:]


def write_split(source: Path, folder: Path) -> dict:
    text = source.read_text(encoding="utf-8")
    calib, evaluation = split_text(text)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"calib": folder / "calib.txt", "eval": folder / "eval.txt"}
    for key, part in (("calib", calib), ("eval", evaluation)):
        files[key].write_text(part, encoding="utf-8")
    return {"source": str(source), "chars": len(text), "cut_at_char": len(calib),
            "calib": {"file": str(files["calib"]), "chars": len(calib), "sha256": _sha(files["calib"])},
            "eval": {"file": str(files["eval"]), "chars": len(evaluation), "sha256": _sha(files["eval"])}}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# Running rys


def rys(*args, log: Path) -> str:
    """Run `rys ARGS`; its stdout. stderr goes to `log`; a failure raises with the log's tail."""
    cmd = [str(RYS), *map(str, args)]
    with open(log, "a") as err:
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    if proc.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}log: {log}")
    return proc.stdout


def decode_speed(gguf: Path, log: Path, n_predict: int = 256, runs: int = 5) -> dict:
    """llama-server's own timings for a fixed-length generation, one slot (median of `runs`)."""
    import requests

    from rys.search.serving.server import LlamaServer

    prompt = "The history of the city begins"
    gen, pp = [], []
    with LlamaServer(gguf, log_path=log, slots=1) as srv:
        for i in range(runs + 1):  # the first is a warm-up (pages the weights in)
            body = {"prompt": f"{prompt} ({i})", "n_predict": n_predict, "ignore_eos": True, "temperature": 0,
                    "cache_prompt": False}
            start = time.perf_counter()
            r = requests.post(srv.base_url + "/completion", json=body, timeout=600).json()
            wall = time.perf_counter() - start
            if i:
                t = r.get("timings") or {}
                gen.append(t.get("predicted_per_second") or n_predict / wall)
                if t.get("prompt_per_second"):
                    pp.append(t["prompt_per_second"])
    return {"tokens_per_s": statistics.median(gen), "runs": [round(g, 1) for g in gen],
            "prompt_tokens_per_s": statistics.median(pp) if pp else None, "n_predict": n_predict}


# --------------------------------------------------------------------------
# One row


class Row:
    """A row's JSON file, saved after every stage."""

    def __init__(self, folder: Path, name: str, config: str, criterion: str | None) -> None:
        self.path = folder / "rows" / f"{name}.json"
        self.name, self.folder = name, folder
        self.data = (json.loads(self.path.read_text()) if self.path.exists()
                     else {"name": name, "config": config, "criterion": criterion, "seconds": {}})

    def stage(self, key: str, fn):
        """Run fn() unless its result is recorded; record it and its seconds."""
        if key not in self.data:
            start = time.monotonic()
            self.data[key] = fn()
            self.data["seconds"][key] = round(time.monotonic() - start, 1)
            self.save()
        return self.data[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def measure(row: Row, gguf_f16: Path, base_f16: Path, split: dict, args) -> None:
    logs = row.folder / "logs"
    log = logs / f"{row.name}.log"
    q8 = gguf_f16.with_name(gguf_f16.name.replace("-f16.gguf", "-q8_0.gguf"))
    row.stage("size", lambda: _sizes(gguf_f16, q8, log))
    row.stage("eval", lambda: json.loads(rys("eval", base_f16, gguf_f16, "--text", split["eval"]["file"],
                                             "--chunks", args.chunks, "--json", log=log)))
    probe_rows = logs / f"{row.name}-probe.jsonl"
    row.stage("probe", lambda: _probe(q8, probe_rows, args, log))
    row.stage("speed", lambda: decode_speed(q8, logs / f"{row.name}-server.log"))
    row.data["done"] = True
    row.save()


def _sizes(f16: Path, q8: Path, log: Path) -> dict:
    if not q8.exists():
        rys("quantize", f16, q8, "q8_0", log=log)
    return {"f16_bytes": f16.stat().st_size, "q8_0_bytes": q8.stat().st_size}


def _probe(gguf: Path, rows: Path, args, log: Path) -> dict:
    from rys.search.probing import summarise
    from rys.search.suites import resolve

    start = time.monotonic()
    out = json.loads(rys("probe", gguf, "--suite", PROBE_SUITES, "--limit", args.limit, "--mode", "choice",
                         "--json", "--out", rows, log=log))
    seconds = time.monotonic() - start
    items = [json.loads(line) for line in rows.read_text().splitlines() if line.strip()]
    scoring = next(s.scoring for s in resolve(REASONING[0], 1).suites)
    pooled = summarise("reasoning", scoring, [r for r in items if r["suite"] in REASONING], 0.0, 0)
    out.append({k: pooled[k] for k in ("suite", "score", "ci_low", "ci_high", "n", "parse_rate")})
    return {"suites": out, "wall_seconds": round(seconds, 1),
            "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in items)}


def prune_row(row: Row, hf_base: Path, split: dict, args) -> Path:
    """The row's f16 GGUF: prune -> convert (the HF folder is removed once converted)."""
    models = row.folder / "models"
    gguf = models / f"{row.name}-f16.gguf"
    hf = models / f"{row.name}-hf"
    log = row.folder / "logs" / f"{row.name}.log"

    def prune() -> dict:
        calib = (["--calib", split["calib"]["file"], "--calib-tokens", args.calib_tokens]
                 if row.data["criterion"] in ("activation", "wanda") else [])
        rys("prune", hf_base, "-o", hf, *CONFIGS[row.data["config"]], "--criterion", row.data["criterion"],
            *calib, "--seed", args.seed, "--force", "-q", log=log)
        p = json.loads((hf / "rys_prune.json").read_text())
        return {"params_before": p["params_before"], "params_after": p["params_after"],
                "counts": p["counts"], "calib": p["calib"], "prune_seconds": p["seconds"]}

    row.stage("prune", prune)

    def convert() -> str:
        rys("convert", hf, gguf, "--outtype", "f16", "--force", log=log)
        shutil.rmtree(hf)
        return str(gguf)

    if not gguf.exists():
        row.data.pop("convert", None)
    row.stage("convert", convert)
    return gguf


# --------------------------------------------------------------------------
# The table


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _ppl(x: float, err: float) -> str:
    return f"{x:.2f} ± {err:.2f}" if x < 1000 else f"{x:,.0f} ± {err:,.0f}"


def _probe_cell(probe: dict, group: str) -> str:
    s = next((s for s in probe["suites"] if s["suite"] == group), None)
    return "-" if s is None else f"{s['score']:.3f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"


def _shape(row: dict) -> str:
    if row["config"] == "base":
        return "9 heads, MLP 1536"
    after = row["prune"]["counts"]["after"]
    return f"{after['heads']} heads, MLP {after['mlp']}"


def table(rows: list[dict]) -> str:
    head = ("| row | criterion | kept per layer | parameters | f16 GGUF | Q8_0 GGUF | perplexity | KL mean | KL 99% | "
            "same top | math | reasoning | tokens/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        e, size = r["eval"], r["size"]
        params = r["prune"]["params_after"] if "prune" in r else r["params"]
        lines.append(
            f"| {r['config']} | {r['criterion'] or '-'} | {_shape(r)} | {_fmt_params(params)} | "
            f"{size['f16_bytes'] / 1e6:.0f} MB | {size['q8_0_bytes'] / 1e6:.0f} MB | "
            f"{_ppl(e['ppl_candidate'], e['ppl_candidate_err'])} | "
            f"{max(e['kld_mean'], 0.0):.3f} | {max(e['kld_p99'], 0.0):.2f} | "
            f"{100 * e['same_top']:.1f}% | {_probe_cell(r['probe'], 'math')} | "
            f"{_probe_cell(r['probe'], 'reasoning')} | {r['speed']['tokens_per_s']:.0f} |")
    return "\n".join(lines)


def _random(rows: list[dict], config: str) -> dict | None:
    return next((r["eval"] for r in rows if r["config"] == config and r["criterion"] == "random"), None)


def verdict(rows: list[dict]) -> list[str]:
    """Which criterion beats random, per configuration, by KL mean (with llama-perplexity's 2-sigma)."""
    out = []
    wins = {c: 0 for c in CRITERIA if c != "random"}
    for config in CONFIGS:
        by = {r["criterion"]: r["eval"] for r in rows if r["config"] == config}
        if "random" not in by:
            continue
        rnd = by["random"]
        parts = []
        for c in wins:
            if c not in by:
                continue
            e = by[c]
            sep = abs(rnd["kld_mean"] - e["kld_mean"]) > 2 * (rnd["kld_mean_err"] + e["kld_mean_err"])
            better = e["kld_mean"] < rnd["kld_mean"] and sep
            wins[c] += better
            word = "beats" if better else ("loses to" if sep else "ties")
            parts.append(f"{c} {word} random: KL {e['kld_mean']:.3f} vs {rnd['kld_mean']:.3f} "
                         f"(x{e['kld_mean'] / rnd['kld_mean']:.2f}), perplexity {e['ppl_candidate']:.1f} vs "
                         f"{rnd['ppl_candidate']:.1f}")
        out.append(f"{config}: " + "; ".join(parts))
    ratios = {c: [r["eval"]["kld_mean"] / _random(rows, r["config"])["kld_mean"]
                  for r in rows if r["criterion"] == c and _random(rows, r["config"])] for c in wins}
    ratios = {c: statistics.mean(v) for c, v in ratios.items() if v}
    out.append(f"beats random (KL mean lower by more than 2 sigma), of {len(CONFIGS)} configurations: "
               + ", ".join(f"{c} {n}" for c, n in wins.items())
               + ("; mean KL as a fraction of random's: " + ", ".join(f"{c} x{v:.2f}" for c, v in ratios.items())
                  if ratios else ""))
    return out


# --------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "sweeps" / "prune-table")
    ap.add_argument("--text", type=Path, default=WIKITEXT)
    ap.add_argument("--chunks", type=int, default=60, help="rys eval --chunks (of 512 tokens)")
    ap.add_argument("--limit", type=int, default=20, help="rys probe --limit (items per suite)")
    ap.add_argument("--calib-tokens", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated row names (base, heads-activation, ...)")
    ap.add_argument("--remeasure-speed", action="store_true",
                    help="measure tokens per second again for every finished row, back to back (machines are noisy)")
    args = ap.parse_args()
    from rys.llamacpp.assets import smollm2_path

    work = args.work
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    split = write_split(args.text, work)
    print(f"calibration: {args.text.name} chars [0, {split['cut_at_char']}) ({split['calib']['chars']} chars); "
          f"evaluation: chars [{split['cut_at_char']}, {split['chars']}), its first {args.chunks} chunks of 512 "
          "tokens", flush=True)

    base = Row(work, "base", "base", None)
    hf_base = work / "models" / "base-hf"
    base_f16 = work / "models" / "base-f16.gguf"
    log = work / "logs" / "base.log"
    if not (hf_base / "config.json").exists():
        rys("convert", smollm2_path(), hf_base, "--outtype", "f32", "--force", log=log)
    if not base_f16.exists():
        rys("convert", hf_base, base_f16, "--outtype", "f16", log=log)
    names = ["base"] + [f"{c}-{k}" for c in CONFIGS for k in CRITERIA]
    only = set(args.only.split(",")) if args.only else set(names)
    results = []
    for name in names:
        config, _, criterion = name.partition("-")
        row = base if name == "base" else Row(work, name, config, criterion)
        if name in only and row.data.get("done") and args.remeasure_speed:
            q8 = work / "models" / f"{name}-q8_0.gguf"
            row.data.pop("speed", None)
            row.stage("speed", lambda: decode_speed(q8, work / "logs" / f"{name}-server.log"))
            print(f"{name}: {row.data['speed']['tokens_per_s']:.0f} tokens/s", flush=True)
        if name in only and not row.data.get("done"):
            print(f"{name} ...", flush=True)
            t0 = time.monotonic()
            if name == "base":
                from rys.checkpoint.hf.folder import Checkpoint

                row.data["params"] = sum(t.numel for t in Checkpoint(hf_base).tensors.values())
                gguf = base_f16
            else:
                gguf = prune_row(row, hf_base, split, args)
            measure(row, gguf, base_f16, split, args)
            print(f"{name} done in {time.monotonic() - t0:.0f} s: " + json.dumps(row.data["seconds"]), flush=True)
        if row.data.get("done"):
            results.append(row.data)

    settings = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF -> HF f32 by rys convert)", "split": split,
                "eval": {"chunks": args.chunks, "ctx": 512, "format": "f16 GGUF"},
                "probe": {"suite": PROBE_SUITES, "pooled": {"reasoning": REASONING}, "limit": args.limit,
                          "mode": "choice", "concurrency": 4, "format": "Q8_0 GGUF"},
                "speed": "Q8_0 GGUF, llama-server 1 slot, 256 generated tokens (ignore_eos), median of 5 after a "
                         "warm-up, its timings.predicted_per_second",
                "calib_tokens": args.calib_tokens, "seed": args.seed, "configs": CONFIGS,
                "wall_seconds_this_invocation": round(time.monotonic() - started, 1)}
    md = table(results)
    lines = verdict(results)
    (work / "table.md").write_text(md + "\n\n" + "\n".join(f"- {v}" for v in lines) + "\n")
    (work / "results.json").write_text(json.dumps({"settings": settings, "rows": results}, indent=2) + "\n")
    print(md)
    print()
    for v in lines:
        print(v)
    total = sum(sum(r["seconds"].values()) for r in results)
    print(f"\nstage seconds summed over rows: {total:.0f}; this invocation: {time.monotonic() - started:.0f} s")
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
