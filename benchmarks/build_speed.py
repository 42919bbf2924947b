"""Benchmark: `rys build` vs `cp`, per output byte, and rys's peak memory.

Writes a synthetic llama-shaped GGUF of about 1.1 GB (Q4_K-typed random
bytes: the content does not matter for copying), then in one run times,
in alternating rounds, `cp` of the input (followed by `sync` of the copy:
rys fsyncs its output) and `rys build` of a 4-layer block, and prints the
ratio of the best seconds per output byte of each and rys's peak RSS. Machines are noisy: read the ratio, not the seconds.

Usage: python benchmarks/build_speed.py [--size-gb 1.1] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np

N_LAYERS = 32
TENSORS_PER_LAYER = 7  # q, k, v, o, gate, up, down


def write_synthetic(path: Path, size_gb: float) -> None:
    """Stream a ~size_gb GGUF to disk, one tensor at a time (bounded memory)."""
    qtype = gguf.GGMLQuantizationType.Q4_K
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    ne0 = 4096
    row_bytes = ne0 // block * type_size
    per_tensor = int(size_gb * 1e9 / (N_LAYERS * TENSORS_PER_LAYER))
    rows = max(1, per_tensor // row_bytes)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("synthetic")
    w.add_block_count(N_LAYERS)
    w.add_embedding_length(ne0)
    names = ["token_embd.weight"] + [f"blk.{i}.t{j}.weight" for i in range(N_LAYERS) for j in range(TENSORS_PER_LAYER)]
    names.append("output_norm.weight")
    for name in names:
        if name == "output_norm.weight":
            w.add_tensor_info(name, (ne0,), np.dtype(np.float32), ne0 * 4)
        else:
            w.add_tensor_info(name, (rows, row_bytes), np.dtype(np.uint8), rows * row_bytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for name in names:
        if name == "output_norm.weight":
            w.write_tensor_data(np.ones(ne0, dtype=np.float32))
        else:
            w.write_tensor_data(rng.integers(0, 256, size=(rows, row_bytes), dtype=np.uint8))
    w.close()


def timed_child(cmd: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of one command.

    Peak RSS comes from GNU time (`%M`): measuring it with wait4 from here would
    count the memory this Python process had when it forked the child."""
    timer = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        proc = subprocess.run([timer, "-o", report.name, "-f", "%M", *cmd], stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed")
        rss_kb = int(report.read().split()[-1])
    return seconds, rss_kb * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=1.1)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--rounds", type=int, default=5, help="alternating cp / rys rounds; the best of each counts")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rys-bench-", dir=args.dir))
    rys = shutil.which("rys") or str(Path(sys.executable).with_name("rys"))
    try:
        src = work / "synthetic.gguf"
        t0 = time.perf_counter()
        write_synthetic(src, args.size_gb)
        print(f"synthetic model: {src.stat().st_size / 1e9:.2f} GB, {N_LAYERS} layers, written in {time.perf_counter() - t0:.1f} s")
        out = work / "out.gguf"
        # rys fsyncs its output before the rename (crash safety), so cp is timed with
        # `sync FILE` after it: both commands end with the bytes on disk.
        runs = {"cp": [], "rys": []}
        for rnd in range(args.rounds):
            for name in ("cp", "rys"):
                target = out if name == "rys" else work / "copy.gguf"
                if name == "cp":
                    cmd = ["sh", "-c", f"cp '{src}' '{target}' && sync '{target}'"]
                else:
                    cmd = [rys, "build", str(src), "12-15", "-o", str(out), "-q", "--force"]
                seconds, rss = timed_child(cmd)
                size = target.stat().st_size
                runs[name].append((seconds / size, rss))
                print(f"{name:<4} run {rnd + 1}: {seconds:6.2f} s  {size / 1e9:.2f} GB  "
                      f"{size / seconds / 1e9:.2f} GB/s  peak RSS {rss / 1e6:.0f} MB")
                target.unlink()
        cp_best = min(r[0] for r in runs["cp"])
        rys_best = min(r[0] for r in runs["rys"])
        print(f"ratio (rys / cp, best seconds per output byte): {rys_best / cp_best:.2f}   target <= 1.2")
        paired = sorted(r[0] / c[0] for r, c in zip(runs["rys"], runs["cp"]))
        print(f"per-round ratios: {' '.join(f'{x:.2f}' for x in paired)}   median {paired[len(paired) // 2]:.2f}")
        print(f"rys peak RSS: {max(r[1] for r in runs['rys']) / 1e6:.0f} MB   target < 150 MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
