"""`rys inspect`, `rys build`, `rys verify`: a GGUF's layers, and a copy with a new layer path."""

from __future__ import annotations

import json
import sys

import click

from ..surgery import spec as specs
from ..core.text import human_bytes
from .common import print_layer_map, sigterm_as_interrupt


def _print_inspect(d: dict) -> None:
    echo = click.echo
    echo(f"{d['file']}  ({human_bytes(d['size'])})")
    echo(f"  architecture      {d['architecture']}")
    extra = f" + {d['extra_layers']} extra (MTP/nextn)" if d["extra_layers"] else ""
    echo(f"  layers            {d['block_count']}{extra}")
    if d["kind_source"]:
        for ks in d["kind_source"]:
            src = f"{ks['key']} = {ks['value']}" if ks["source"] == "scalar" else f"{ks['source']}" + (f" {ks['key']}" if ks["key"] else "")
            echo(f"  layer kinds       {'/'.join(ks['kinds'])}, from {src}")
    else:
        echo("  layer kinds       all layers alike")
    if d["period"]:
        echo(f"  period            {d['period']}")
    echo(f"  per-layer arrays  {', '.join(d['per_layer_arrays']) or 'none'}")
    echo("  tensor types      " + ", ".join(f"{k} x{v}" for k, v in d["tensor_types"].items()))
    trunk = [x["bytes"] for x in d["layers"] if not x["extra"]]
    if trunk:
        lo, hi = min(trunk), max(trunk)
        per = human_bytes(lo) if lo == hi else f"{human_bytes(lo)} - {human_bytes(hi)}"
        echo(f"  bytes per layer   {per}")
    if d["rys"]:
        echo(f"  rys provenance    spec {d['rys'].get('spec')} on {d['rys'].get('source.name')}, "
             f"path {specs.describe(list(d['rys'].get('layer_path') or []))}")
    echo("  layer map")
    kinds = [x["kind"] + (" (extra)" if x["extra"] else "") for x in d["layers"]]
    print_layer_map(kinds)


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def inspect_command(model, as_json):
    """Show a GGUF model's layers as llama.cpp will see them.

    \b
    Architecture, trunk and extra (MTP) layers, the kind of every layer
    (deltanet/attention, swa/global, ...) and where llama.cpp takes it from,
    per-layer metadata arrays, tensor types and bytes per layer.

    \b
    Example:
      rys inspect Qwen3.5-4B-Q4_K_M.gguf --json
    """
    from ..core.model import load

    d = load(model).summary()
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        _print_inspect(d)


@click.command("build")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.argument("spec")
@click.option("-o", "--output", "out", type=click.Path(path_type=str), help="Output file [default: MODEL-rys_SPEC.gguf beside MODEL].")
@click.option("--layout", type=click.Choice(["auto", "interval", "explicit"]), default="auto", show_default=True,
              help="How layer kinds that llama.cpp takes from a period are written (see below).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def build_command(model, spec, out, layout, force, quiet):
    """Write a copy of MODEL whose forward pass follows SPEC.

    \b
    SPEC:
      I-J          run the inclusive block I..J twice: 27-30 on 32 layers
                   gives the path 0..30, 27..30, 31
      I-J,K-L      several blocks, applied in turn; each names layers of the
                   original model and its copy goes right after the last
                   occurrence of its last layer so far
                   (1-2,5-6 on 8 layers: 0 1 2 1 2 3 4 5 6 5 6 7)
      path:R,R,..  the whole path as inclusive ranges, e.g. path:0-30,27-30,31
                   or path:0-9,12-31 (deletes 10 and 11); 5-3 runs downwards

    \b
    --layout (for kinds llama.cpp derives from a period, e.g. Qwen3.5's
    full_attention_interval or Gemma's sliding-window pattern):
      auto      keep the period when the path preserves every layer's kind,
                otherwise write the per-layer array and say so
      interval  keep the period; refuse paths that would change a kind
      explicit  always write the per-layer array

    \b
    MTP/nextn layers stay at the end. Tensor bytes are copied verbatim
    (any quantization type); the output is written to a temporary file and
    renamed, so a failure or Ctrl-C never leaves a partial file.

    \b
    Examples:
      rys build Qwen3.5-4B-Q4_K_M.gguf 27-30
      rys build model.gguf 1-2,5-6 -o model-two-blocks.gguf
      rys build model.gguf 'path:0-9,12-31' --force
    """
    from ..surgery.rewrite import prepare, write_plan

    sigterm_as_interrupt()
    p, out_path = prepare(model, spec, out, layout, force)  # every check before the progress bar
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=p.n_bytes, unit="B", unit_scale=True, desc="copying", file=sys.stderr, leave=False)
    try:
        result = write_plan(p, out_path, force, bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    for note in result.plan.notes:
        click.echo(f"note: {note}", err=True)
    full = result.plan.full_path
    click.echo(f"{len(full)} layers: {specs.describe(result.plan.trunk_path)}"
               + (f" + {p.model.n_extra} extra" if p.model.n_extra else "")
               + f"; {human_bytes(result.out.stat().st_size)} in {result.seconds:.1f} s", err=True)
    click.echo(str(result.out))


@click.command("verify")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--tokens", type=click.IntRange(min=1), default=8, show_default=True, help="How many tokens to decode.")
@click.option("--prompt", default="The capital of France is", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def verify_command(model, tokens, prompt, as_json):
    """Load MODEL with llama.cpp, decode a few tokens, check the logits.

    \b
    Fails (exit 1) if llama.cpp cannot load the file, if any logit is NaN or
    infinite, or if the layer kinds llama.cpp reports differ from the kinds
    rys expects. Prints the layer map llama.cpp used.

    \b
    Example:
      rys verify Qwen3.5-4B-Q4_K_M-rys_27-30.gguf
    """
    from ..surgery.verify import verify as do_verify

    report = do_verify(model, prompt=prompt, n_tokens=tokens)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['file']}: loaded by llama.cpp {report['llama_cpp']} ({report['n_layer']} layers)")
    print_layer_map(report["llama_kinds"])
    click.echo(f"decoded {report['n_decoded']} tokens: {report['text']!r}")
    click.echo("logits finite: yes; layer kinds match rys: yes")


