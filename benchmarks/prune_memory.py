"""Benchmark: memory and speed of `rys prune --criterion activation` on a multi-GB checkpoint.

Writes a synthetic llama-architecture HF checkpoint (random bf16 weights,
wide layers, SmolLM2's tokenizer and vocabulary; 10 layers of hidden 2048 /
MLP 8192 / 16 heads of 128 over 4 KV heads: 1.62 GB by default), then
prunes it (`--heads 0.25 --mlp 0.15`, activation importance on 16,384
calibration tokens from the first half of wikitext-2's test text) in a
child process, and prints:

  - peak RSS of the child, and its rise above the baseline taken after the
    imports (python, torch, transformers' llama, rys.checkpoint.prune.uniform: ~0.4 GB that
    any run pays whatever the model);
  - the bound 1.5 x (largest layer + embeddings) + calibration buffers,
    computed from the checkpoint: layer and embedding sizes as stored
    (embeddings = embed_tokens + lm_head), calibration buffers = the cached
    hidden states (tokens x hidden x 4 bytes, float32) + one sequence's
    working set in a layer (512 tokens: MLP gate/up/product, attention
    scores, a few hidden-sized temporaries, float32);
  - where the peak happened (which layer, scoring or writing);
  - the file size, and seconds per GB (the child's prune, wall clock).

The checkpoint is kept in --work (default /tmp/rys-prune-memory) and reused
when its config matches; the pruned output is deleted unless --keep.

The peak depends on glibc's allocator: with its defaults the mmap threshold
grows with every large free (up to 32 MB), tensors below it come from the
heap, and the heap fragments, so the peak differs from run to run;
`--mmap-threshold 1048576` fixes the threshold and the peak with it.

Usage: python benchmarks/prune_memory.py [--work DIR] [--layers 10] [--hidden 2048] [--ff 8192]
       [--mmap-threshold 1048576]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RYS = Path(sys.executable).parent / "rys"
WIKITEXT = Path("/work/shared/datasets/wikitext2/wiki.test.raw")
SEQ_LEN = 512  # rys.checkpoint.prune.calibration.SEQ_LEN
SHARD_BYTES = 1 << 30  # the synthetic checkpoint's shards hold at most this much
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


# --------------------------------------------------------------------------
# The synthetic checkpoint


def llama_config(layers: int, hidden: int, ff: int, heads: int, kv_heads: int, vocab: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": ff, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": hidden // heads,
        "vocab_size": vocab, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    }


def tensor_shapes(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor of a llama checkpoint, in order."""
    h, ff, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (cfg["vocab_size"], h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,)), (p + "post_attention_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (q, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, q)),
                (p + "mlp.gate_proj.weight", (ff, h)), (p + "mlp.up_proj.weight", (ff, h)),
                (p + "mlp.down_proj.weight", (h, ff))]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (cfg["vocab_size"], h))]
    return out


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def write_checkpoint(folder: Path, cfg: dict, tokenizer_dir: Path, seed: int = 0) -> None:
    """Random bf16 weights (std 0.02; norms 1), sharded at SHARD_BYTES, with an index."""
    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shapes = tensor_shapes(cfg)
    shards, current, size = [], [], 0
    for name, shape in shapes:
        if current and size + 2 * numel(shape) > SHARD_BYTES:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += 2 * numel(shape)
    shards.append(current)
    gen = torch.Generator().manual_seed(seed)
    weight_map = {}
    for k, shard in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, shape in shard:
            if len(shape) == 1:
                tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
            weight_map[name] = file
        save_file(tensors, str(tmp / file), metadata={"format": "pt"})
        del tensors
    total = sum(2 * numel(s) for _, s in shapes)
    (tmp / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copy2(tokenizer_dir / name, tmp / name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def smollm2_tokenizer(work: Path) -> Path:
    """A folder with SmolLM2's tokenizer: `rys convert` of the test asset (cached in work)."""
    folder = work / "smollm2-hf"
    if not (folder / "tokenizer.json").exists():
        out = subprocess.run([sys.executable, "-m", "rys.llamacpp.assets", "smollm2"], capture_output=True, text=True,
                             check=True).stdout.strip()
        subprocess.run([str(RYS), "convert", out, str(folder), "--outtype", "bf16", "--force"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder


# --------------------------------------------------------------------------
# The bound


def bound(cfg: dict, calib_tokens: int) -> dict:
    """1.5 x (largest layer + embeddings) + calibration buffers, in bytes, with its parts."""
    shapes = tensor_shapes(cfg)
    layer = {}
    for name, shape in shapes:
        if name.startswith("model.layers."):
            i = int(name.split(".")[2])
            layer[i] = layer.get(i, 0) + 2 * numel(shape)
    embeddings = sum(2 * numel(s) for n, s in shapes if n in ("model.embed_tokens.weight", "lm_head.weight"))
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    hidden_cache = calib_tokens * h * 4
    # one 512-token sequence inside a layer, float32: gate, up and their product [512, ff];
    # attention scores [heads, 512, 512]; ~6 hidden-sized temporaries (norms, q/k/v/o, residual)
    working = 4 * (SEQ_LEN * 3 * ff + cfg["num_attention_heads"] * SEQ_LEN * SEQ_LEN + 6 * SEQ_LEN * h)
    largest = max(layer.values())
    return {"largest_layer": largest, "embeddings": embeddings, "hidden_cache": hidden_cache,
            "working_set": working, "calibration_buffers": hidden_cache + working,
            "bound": int(1.5 * (largest + embeddings) + hidden_cache + working),
            "file_bytes": sum(2 * numel(s) for _, s in shapes)}


# --------------------------------------------------------------------------
# The child: the prune, measured


def _status(key: str) -> int:
    """A byte count from /proc/self/status: VmRSS (now) or VmHWM (the peak of this process image).

    Not getrusage's ru_maxrss: on Linux a child inherits its parent's maximum
    through fork and exec, so it would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(model: Path, out: Path, calib: Path, tokens: int) -> None:
    """Prune in this process; print one JSON line: baseline, peak, where the peak was, seconds."""
    import torch  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    from rys.checkpoint.prune.uniform import Request, parse_amount, prepare, run

    baseline = _status("VmHWM")
    step = [0]
    peak = {"rss": 0, "step": 0, "t": 0.0}
    by_step: dict[int, int] = {}  # progress step -> highest RSS seen during it
    done = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not done.is_set():
            r = _status("VmRSS")
            by_step[step[0]] = max(by_step.get(step[0], 0), r)
            if r > peak["rss"]:
                peak.update(rss=r, step=step[0], t=round(time.monotonic() - start, 1))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    request = Request(heads=parse_amount("0.25", "--heads"), mlp=parse_amount("0.15", "--mlp"),
                      criterion="activation", calib=calib, calib_tokens=tokens)
    job = prepare(model, out, request, force=True)
    prepared = time.monotonic() - start

    def progress(n: int) -> None:
        step[0] += n

    provenance = run(job, progress)
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    print(json.dumps({"baseline": baseline, "peak": _status("VmHWM"),
                      "peak_sampled": peak, "rss_by_step": [by_step.get(k, 0) for k in range(max(by_step) + 1)],
                      "layers": len(job.kinds), "seconds": seconds,
                      "prepare_seconds": prepared, "calib_tokens": provenance["calib"]["tokens"],
                      "params_before": provenance["params_before"], "params_after": provenance["params_after"],
                      "counts": provenance["counts"]}))


# --------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rys-prune-memory"))
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ff", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--calib-tokens", type=int, default=16384)
    ap.add_argument("--keep", action="store_true", help="keep the pruned checkpoint")
    ap.add_argument("--mmap-threshold", type=int, metavar="BYTES",
                    help="run the child with MALLOC_MMAP_THRESHOLD_=BYTES (glibc: a fixed threshold, so every "
                         "larger tensor is mmapped and returned on free; without it the peak varies run to run)")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from prune_table import split_text

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    tok = smollm2_tokenizer(work)
    vocab = json.loads((tok / "config.json").read_text())["vocab_size"]
    cfg = llama_config(args.layers, args.hidden, args.ff, args.heads, args.kv_heads, vocab)
    model = work / "synthetic"
    if not (model / "config.json").exists() or json.loads((model / "config.json").read_text()) != cfg:
        t0 = time.monotonic()
        print(f"writing the synthetic checkpoint to {model} ...", flush=True)
        write_checkpoint(model, cfg, tok)
        print(f"  done in {time.monotonic() - t0:.0f} s", flush=True)
    calib = work / "calib.txt"
    calib.write_text(split_text(WIKITEXT.read_text(encoding="utf-8"))[0], encoding="utf-8")
    file_bytes = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    b = bound(cfg, args.calib_tokens)
    out = work / "pruned"
    print(f"pruning {file_bytes / 1e9:.2f} GB ({cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
          f"MLP {cfg['intermediate_size']}, {cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV, "
          f"vocab {vocab}, bf16): --heads 0.25 --mlp 0.15 --criterion activation, {args.calib_tokens} tokens ...",
          flush=True)
    env = dict(os.environ)
    if args.mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    proc = subprocess.run([sys.executable, __file__, "--child", str(model), str(out), str(calib),
                           str(args.calib_tokens)], capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"the prune failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    out_bytes = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    rise = r["peak"] - r["baseline"]
    n = r["layers"]
    step = r["peak_sampled"]["step"]
    # progress counts layers scored (0..n), then layers written (the embeddings go before layer 0)
    where = (f"scoring layer {step}" if step < n else
             "writing the embeddings or layer 0" if step == n else
             f"writing layer {step - n}" if step < 2 * n else "finishing")
    gb = file_bytes / 1e9
    lines = [
        "malloc: " + (f"MALLOC_MMAP_THRESHOLD_={env['MALLOC_MMAP_THRESHOLD_']}" if args.mmap_threshold
                      else "glibc defaults"),
        f"checkpoint: {file_bytes / 1e9:.2f} GB on disk; largest layer {mb(b['largest_layer'])}, "
        f"embeddings (embed_tokens + lm_head) {mb(b['embeddings'])}",
        f"calibration buffers: {mb(b['calibration_buffers'])} (hidden cache {r['calib_tokens']} x "
        f"{cfg['hidden_size']} x 4 B = {mb(b['hidden_cache'])}, one sequence's working set {mb(b['working_set'])})",
        f"bound 1.5 x (largest layer + embeddings) + calibration buffers: {mb(b['bound'])}",
        f"peak RSS: {mb(r['peak'])} = baseline after imports {mb(r['baseline'])} + {mb(rise)} for the prune "
        f"(peak while {where}, at {r['peak_sampled']['t']:.0f} s)",
        f"ratios: prune's rise / bound {rise / b['bound']:.2f}; whole peak / bound {r['peak'] / b['bound']:.2f}; "
        f"peak / file size {r['peak'] / file_bytes:.2f}",
        f"time: {r['seconds']:.0f} s ({r['prepare_seconds']:.0f} s of checks and tokenizing); "
        f"{r['seconds'] / gb:.0f} s per GB; output {out_bytes / 1e9:.2f} GB, parameters "
        f"{r['params_before'] / 1e6:.0f}M -> {r['params_after'] / 1e6:.0f}M",
    ]
    rises = [f"{(x - r['baseline']) / 1e6:.0f}" if x else "-" for x in r["rss_by_step"]]  # "-": not sampled
    lines.append(f"RSS above the baseline while scoring layer 0, 1, ...: {' '.join(rises[:n])} MB; "
                 f"while writing: {' '.join(rises[n:])} MB")
    for line in lines:
        print(line)
    (work / "result.json").write_text(json.dumps({"config": cfg, "bound": b, "child": r, "file_bytes": file_bytes,
                                                  "out_bytes": out_bytes, "lines": lines}, indent=2) + "\n")


if __name__ == "__main__":
    main()
