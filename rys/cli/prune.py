"""`rys prune`: attention heads, KV heads, MLP channels and DeltaNet value heads
removed from a Hugging Face checkpoint (torch; imported only when run)."""

from __future__ import annotations

import contextlib
import sys

import click

from .common import sigterm_as_interrupt

CRITERIA = ("activation", "wanda", "magnitude", "random")  # rys.checkpoint.prune.importance.CRITERIA, without importing torch
UNIT_NAMES = {"heads": "query heads", "kv_heads": "KV heads", "mlp": "MLP", "v_heads": "DeltaNet v-heads"}


def _summary(p: dict) -> str:
    before, after = p["counts"]["before"], p["counts"]["after"]
    changes = [f"{name} {before[u]} -> {after[u]}" for u, name in UNIT_NAMES.items() if before[u] != after[u]]
    calib = f" on {p['calib']['tokens']} tokens" if p["calib"] else ""
    mask = ", masked (same shapes)" if p["mask_only"] else ""
    return (f"{p['architecture']}, {len(p['layers'])} layers: {', '.join(changes)}; parameters "
            f"{p['params_before'] / 1e6:.2f}M -> {p['params_after'] / 1e6:.2f}M ({p['criterion']}{calib}{mask}) "
            f"in {p['seconds']:.1f} s")


def _per_layer_summary(p: dict) -> str:
    t = p["totals"]
    changes = [f"{name} {t['before'][u]} -> {t['after'][u]}" for u, name in UNIT_NAMES.items()
               if u in t["before"] and t["before"][u] != t["after"][u]]
    per_layer = "; ".join(f"{name} per layer " + " ".join(str(len(layer[f"{u}_kept"])) for layer in p["layers"])
                          for u, name in UNIT_NAMES.items() if u in t["before"] and t["before"][u] != t["after"][u])
    calib = f" on {p['calib']['tokens']} tokens" if p["calib"] else ""
    return (f"{p['architecture']} -> deci, {len(p['layers'])} layers: {', '.join(changes)} ({per_layer}); parameters "
            f"{p['params_before'] / 1e6:.2f}M -> {p['params_after'] / 1e6:.2f}M ({p['criterion']}{calib}) "
            f"in {p['seconds']:.1f} s")


@click.command("prune")
@click.argument("model_dir", type=click.Path(path_type=str))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=str),
              help="Output folder (a new HF checkpoint); with --per-layer, OUT.gguf (deci).")
@click.option("--heads", metavar="F|N", help="Query heads to remove from every layer: a fraction or a number.")
@click.option("--kv-heads", metavar="F|N", help="KV heads to remove from every layer (each with its query heads).")
@click.option("--mlp", metavar="F|WIDTH", help="MLP: a fraction of channels to remove, or the width to keep.")
@click.option("--deltanet-v-heads", "v_heads", metavar="F|N", help="Gated DeltaNet value heads to remove (Qwen3.5).")
@click.option("--criterion", type=click.Choice(CRITERIA), default="activation", show_default=True,
              help="How units are scored (the lowest go).")
@click.option("--calib", type=click.Path(path_type=str), help="Plain-text calibration file (activation, wanda).")
@click.option("--calib-tokens", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Calibration tokens taken from the start of --calib.")
@click.option("--multiple", type=click.IntRange(min=1), default=256, show_default=True,
              help="MLP widths snap to a multiple of this (256: K-quants apply to ffn_down).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --criterion random.")
@click.option("--mask-only", is_flag=True, help="Keep the shapes; zero the pruned units (a reference to compare with).")
@click.option("--per-layer", is_flag=True,
              help="Each layer keeps its own counts under the same total budget; writes a deci GGUF (llama, mistral).")
@click.option("--force", is_flag=True, help="Replace the output if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prune_command(model_dir, out, heads, kv_heads, mlp, v_heads, criterion, calib, calib_tokens, multiple, seed,
                  mask_only, per_layer, force, quiet):
    """Remove attention heads and MLP channels from an HF checkpoint (defrag).

    \b
    MODEL_DIR holds config.json and safetensors (one file or shards). Every
    layer loses the same number of units, so llama.cpp loads the result
    (which units go may differ per layer). F is a fraction (0 < F < 1),
    N a number; --mlp WIDTH is the width kept, a multiple of --multiple.
    Query heads go within their KV groups, the same number from each; a
    removed KV head takes its query heads with it. Architectures: llama,
    mistral, qwen2 (MLP only: llama.cpp fixes its query width), qwen3,
    qwen3.5 text models (attention heads, DeltaNet value heads, MLP).

    \b
    Criteria: activation (mean L2 of a unit's output over calibration
    tokens), wanda (|W| x input norm), magnitude (weights only), random
    (the control). Calibration runs one layer at a time; a GPU is used when
    torch sees one. The output folder holds the weights (sharded like the
    input), config.json with the new counts, the tokenizer files and
    rys_prune.json (criterion, calibration file hash, kept indices).

    \b
    --per-layer (llama, mistral): the same total amount goes, but where the
    scores (over their layer's mean) are lowest, so layers keep different
    numbers of query heads, KV heads and MLP channels (every KV group of a
    layer keeps the same number of query heads; layer 0 keeps attention;
    widths are multiples of --multiple). llama.cpp loads such shapes only as
    architecture deci: the output is an f32 deci GGUF (vocabulary from
    llama.cpp's converter) and OUT.gguf.rys_prune.json beside it.

    \b
    Examples:
      rys prune SmolLM2-135M -o SmolLM2-pruned --heads 0.25 --mlp 0.15 \\
          --calib wiki.train.raw --calib-tokens 8192
      rys prune Qwen3.5-4B -o q-mlp7680 --mlp 7680 --criterion wanda --calib c.txt
      rys prune model -o model-random --kv-heads 1 --criterion random --seed 3
      rys prune SmolLM2-135M -o smol-nonuniform.gguf --per-layer --heads 0.25 \\
          --mlp 0.25 --calib wiki.train.raw
    """
    from ..checkpoint.prune import per_layer as deci
    from ..checkpoint.convert import vocab_only
    from ..checkpoint.prune.uniform import Request, parse_amount, prepare, run

    sigterm_as_interrupt()
    amounts = {k: parse_amount(v, f"--{o}") if v is not None else None
               for k, v, o in (("heads", heads, "heads"), ("kv_heads", kv_heads, "kv-heads"),
                               ("mlp", mlp, "mlp"), ("v_heads", v_heads, "deltanet-v-heads"))}
    request = Request(**amounts, criterion=criterion, calib=calib, calib_tokens=calib_tokens, multiple=multiple,
                      seed=seed, mask_only=mask_only)
    _quiet_transformers()
    job = (deci.prepare if per_layer else prepare)(model_dir, out, request, force)  # every check before the bar
    for note in job.notes:
        click.echo(f"note: {note}", err=True)
    with contextlib.ExitStack() as stack:
        vocab = stack.enter_context(vocab_only(job.ckpt.folder)) if per_layer else None
        bar = None
        if not quiet:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=2 * len(job.kinds), unit="layer", desc="pruning", file=sys.stderr,
                                           leave=False))
        update = bar.update if bar else None
        provenance = deci.run(job, vocab, update) if per_layer else run(job, update)
    click.echo((_per_layer_summary if per_layer else _summary)(provenance), err=True)
    click.echo(str(job.out))


def _quiet_transformers() -> None:
    """transformers' notes about optional kernels (fla, causal-conv1d) are not the user's business here."""
    from transformers.utils import logging

    logging.set_verbosity_error()
