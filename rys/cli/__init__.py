"""The `rys` command line: one click group, verb subcommands.

Only this module turns RysError into a one-line message and an exit code;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections import Counter
from pathlib import Path

import click

from . import __version__, spec as specs
from .errors import RysError


def _user_errors(fn):
    """Show RysError as `Error: message` with exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RysError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C so temporary files and servers are cleaned up."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rys")
def cli():
    """rys: layer surgery and circuit search on GGUF language models.

    \b
    Examples:
      rys inspect Qwen3.5-4B-Q4_K_M.gguf
      rys build Qwen3.5-4B-Q4_K_M.gguf 27-30
      rys verify Qwen3.5-4B-Q4_K_M-rys_27-30.gguf
      rys rank sweeps/Qwen3.5-4B-Q4_K_M
      rys report sweeps/Qwen3.5-4B-Q4_K_M
    """


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _runs(kinds: list[str]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for i, k in enumerate(kinds):
        if out and out[-1][2] == k and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i, k)
        else:
            out.append((i, i, k))
    return out


def _print_layer_map(kinds: list[str]) -> None:
    for a, b, k in _runs(kinds):
        span = f"{a}-{b}" if b != a else f"{a}"
        click.echo(f"    {span:<9}{k}")


def inspect_dict(m) -> dict:
    kinds = m.kinds()
    scalar = next((info for info in m.kind_infos if info.source == "scalar" and info.rule.is_periodic()), None)
    return {
        "file": m.path.name,
        "size": m.file.size,
        "architecture": m.arch,
        "block_count": m.n_trunk,
        "extra_layers": m.n_extra,
        "period": scalar.period if scalar else None,
        "kind_source": [
            {"kinds": list(info.rule.kinds) if info.rule else sorted(set(info.kinds)), "source": info.source,
             "key": m.key(info.rule.scalar_key if info.source == "scalar" else info.rule.array_key) if info.rule else None,
             "value": info.period}
            for info in m.kind_infos
        ],
        "per_layer_arrays": m.per_layer_arrays,
        "tensor_types": dict(Counter(t.type_name for t in m.file.tensors).most_common()),
        "layers": [
            {"index": i, "kind": kinds[i], "extra": i >= m.n_trunk, "bytes": m.layer_bytes(i),
             "tensors": len(m.layers[i])}
            for i in range(m.n_layer_all)
        ],
        "rys": {k[4:]: v.value for k, v in m.file.fields.items() if k.startswith("rys.") and k != "rys.page_pad"} or None,
    }


def _print_inspect(d: dict) -> None:
    echo = click.echo
    echo(f"{d['file']}  ({_human_bytes(d['size'])})")
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
        per = _human_bytes(lo) if lo == hi else f"{_human_bytes(lo)} - {_human_bytes(hi)}"
        echo(f"  bytes per layer   {per}")
    if d["rys"]:
        echo(f"  rys provenance    spec {d['rys'].get('spec')} on {d['rys'].get('source.name')}, "
             f"path {specs.describe(list(d['rys'].get('layer_path') or []))}")
    echo("  layer map")
    kinds = [x["kind"] + (" (extra)" if x["extra"] else "") for x in d["layers"]]
    _print_layer_map(kinds)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_user_errors
def inspect(model, as_json):
    """Show a GGUF model's layers as llama.cpp will see them.

    \b
    Architecture, trunk and extra (MTP) layers, the kind of every layer
    (deltanet/attention, swa/global, ...) and where llama.cpp takes it from,
    per-layer metadata arrays, tensor types and bytes per layer.

    \b
    Example:
      rys inspect Qwen3.5-4B-Q4_K_M.gguf --json
    """
    from .model import load

    d = inspect_dict(load(model))
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        _print_inspect(d)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.argument("spec")
@click.option("-o", "--output", "out", type=click.Path(path_type=str), help="Output file [default: MODEL-rys_SPEC.gguf beside MODEL].")
@click.option("--layout", type=click.Choice(["auto", "interval", "explicit"]), default="auto", show_default=True,
              help="How layer kinds that llama.cpp takes from a period are written (see below).")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_user_errors
def build(model, spec, out, layout, force, quiet):
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
    from .rewrite import prepare, write_plan

    _sigterm_as_interrupt()
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
               + f"; {_human_bytes(result.out.stat().st_size)} in {result.seconds:.1f} s", err=True)
    click.echo(str(result.out))


@cli.command()
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--tokens", type=click.IntRange(min=1), default=8, show_default=True, help="How many tokens to decode.")
@click.option("--prompt", default="The capital of France is", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_user_errors
def verify(model, tokens, prompt, as_json):
    """Load MODEL with llama.cpp, decode a few tokens, check the logits.

    \b
    Fails (exit 1) if llama.cpp cannot load the file, if any logit is NaN or
    infinite, or if the layer kinds llama.cpp reports differ from the kinds
    rys expects. Prints the layer map llama.cpp used.

    \b
    Example:
      rys verify Qwen3.5-4B-Q4_K_M-rys_27-30.gguf
    """
    from .verify import verify as do_verify

    report = do_verify(model, prompt=prompt, n_tokens=tokens)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['file']}: loaded by llama.cpp {report['llama_cpp']} ({report['n_layer']} layers)")
    _print_layer_map(report["llama_kinds"])
    click.echo(f"decoded {report['n_decoded']} tokens: {report['text']!r}")
    click.echo("logits finite: yes; layer kinds match rys: yes")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--ctx", type=click.IntRange(min=1), default=4096, show_default=True, help="Context size of each slot, in tokens.")
@click.option("--slots", type=click.IntRange(min=1), default=1, show_default=True, help="Requests served at once (llama-server's -np).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: physical cores].")
@click.option("--server-bin", type=click.Path(dir_okay=False, path_type=str),
              help="llama-server binary [default: $RYS_LLAMA_SERVER, PATH, then `make llama-server`'s build].")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=str),
              help="Write llama-server's log to this file instead of the terminal.")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
@_user_errors
def serve(model, port, host, ctx, slots, threads, server_bin, log_path, extra):
    """Serve MODEL with llama-server in the foreground until Ctrl-C.

    \b
    Uses the same defaults as the sweep: the model's chat template (--jinja),
    -c CTX*SLOTS, -np SLOTS, -t physical cores, -ngl 99 on Apple silicon and
    0 elsewhere, no web UI. Arguments after `--` go to llama-server as they
    are and override these defaults.

    \b
    Examples:
      rys serve Qwen3.5-4B-Q4_K_M-rys_27-30.gguf
      rys serve model.gguf --port 9000 --slots 4 -- --reasoning off
    """
    from .server import LlamaServer

    _sigterm_as_interrupt()
    srv = LlamaServer(model, log_path=log_path, port=port, host=host, slots=slots, ctx=ctx,
                      threads=threads, server_bin=server_bin, extra_args=extra)
    if srv.launcher.note:
        click.echo(f"warning: {srv.launcher.note}", err=True)
    try:
        with srv:
            click.echo(f"serving {srv.model.name} at {srv.base_url}  (OpenAI API: {srv.base_url}/v1; Ctrl-C stops)")
            click.echo('Qwen3.5 thinks by default: send "chat_template_kwargs": {"enable_thinking": false} '
                       "with a request, or start with `-- --reasoning off`")
            status = srv.wait()
        raise RysError(f"llama-server exited by itself (status {status})")
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--block", type=click.IntRange(min=1), default=8, show_default=True, help="Layers per duplicated block.")
@click.option("--stride", type=click.IntRange(min=1), default=4, show_default=True, help="Distance between block starts.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First layer a block may start at.")
@click.option("--end", type=click.IntRange(min=1), default=None, help="Blocks end before this layer [default: all layers].")
@click.option("--blocks", default=None, help="Explicit blocks instead of --block/--stride, e.g. 27-30,28-31.")
@click.option("--suite", default="math,eq,reasoning", show_default=True, help="Probe suites (see rys probe --help).")
@click.option("--limit", type=click.IntRange(min=1), default=16, show_default=True, help="Items per suite used by the search.")
@click.option("--holdout", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra items per suite, never used by the search, to re-measure the top candidates.")
@click.option("--holdout-top", type=click.IntRange(min=1), default=3, show_default=True, help="How many top candidates get the hold-out items.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mode", type=click.Choice(["generate", "choice"]), default="generate", show_default=True)
@click.option("--eq-revise", is_flag=True,
              help="Ask EQ items with critique and revision (EQ-Bench v2.0; see rys probe --help).")
@click.option("--layout", type=click.Choice(["auto", "interval", "explicit"]), default="auto", show_default=True,
              help="As in rys build; blocks it cannot express are listed as skipped.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Parallel requests (= llama-server slots).")
@click.option("--prefilter", type=click.Choice(["kl"]), default=None,
              help="Skip candidates whose next-token distributions drift past --kl-threshold.")
@click.option("--kl-threshold", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Nats per token.")
@click.option("--halving", is_flag=True, help="Successive halving over items: the better half gets more items.")
@click.option("--shard", default=None, help="K/N: run every N-th candidate from the K-th (baseline in every shard).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Result folder [default: sweeps/<model stem>/].")
@click.option("--keep-models", is_flag=True, help="Keep each candidate's GGUF in OUT/models.")
@click.option("--server-bin", default=None, help="llama-server binary [default: $RYS_LLAMA_SERVER, PATH, make llama-server].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="llama-server threads [default: physical cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_user_errors
def sweep(model, quiet, out, **options):
    """Search for the block that helps most: build, serve and probe every candidate.

    \b
    Candidates are the baseline plus one duplicated block of --block layers
    starting at --start, --start + --stride, ... that ends before --end (or the
    --blocks list). Each is built into a scratch folder (RAM-backed where memory
    allows), served with llama-server, scored on the same items as the
    baseline, then deleted. Every scored item is saved at once in OUT: run the
    same command again to resume; nothing already scored is recomputed.

    \b
    Examples:
      rys sweep Qwen3.5-4B-Q4_K_M.gguf --block 8 --stride 4
      rys sweep Qwen3.5-4B-Q4_K_M.gguf --block 4 --stride 1 --start 8 --end 32
      rys sweep model.gguf --blocks 27-30,28-31 --suite math,eq --limit 40 --holdout 40
      rys rank sweeps/Qwen3.5-4B-Q4_K_M
    """
    from pathlib import Path

    from .sweep import Events, Sweep, SweepConfig

    _sigterm_as_interrupt()
    cfg = SweepConfig(model=model, **options)
    out_dir = Path(out) if out else Path("sweeps") / Path(model).stem
    events = Events() if quiet else _progress_events()
    sw = Sweep(cfg, out_dir, events)
    n = sum(1 for p in sw.planned if not p.skip_reason)
    click.echo(f"{len(sw.planned)} candidates ({n} to score, {len(sw.planned) - n} skipped), "
               f"{sum(len(s.items) for s in sw.search_suites)} items each; results in {out_dir}", err=True)
    result = sw.run()
    events.close() if hasattr(events, "close") else None
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(result.counts.items())), err=True)
    click.echo(str(result.folder))


def _progress_events():
    """tqdm bars on stderr: one over candidates, one over the items of the current candidate."""
    from tqdm import tqdm

    from .sweep import Events

    bars = {}

    def candidate(name, what):
        bar = bars.get("items")
        if bar is not None:
            bar.set_description(f"{name}: {what}")

    def items(name, done, total):
        bar = bars.get("items")
        if bar is None or bar.total != total or bars.get("name") != name:
            if bar is not None:
                bar.close()
            bar = bars["items"] = tqdm(total=total, desc=name, unit="item", file=sys.stderr, leave=False)
            bars["name"] = name
        bar.n = done
        bar.refresh()

    def finished(name, status, reason):
        tqdm.write(f"{name}: {status}" + (f" ({reason})" if reason else ""), file=sys.stderr)

    events = Events(candidate, items, finished)
    events.close = lambda: bars.get("items") and bars["items"].close()
    return events


@cli.command("rank")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--by", default="combined", show_default=True,
              help="Rank by combined (sum of per-group z-scores of the deltas, as RYS ranks) "
                   "or by one group's delta: math, eq, reasoning.")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json", "md"]), default="table",
              show_default=True, help="Output format.")
@click.option("--suites", is_flag=True, help="Also show every suite on its own (math.arith, ...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
@_user_errors
def rank_command(dirs, by, form, suites, seed):
    """Rank the candidates of one sweep (several DIRs: its shards, merged).

    \b
    Per probe group and candidate: score, n, delta vs baseline with a paired
    bootstrap 95% interval (* where it excludes 0), and combined, the sum of
    the z-scores of the deltas across candidates. Failed and skipped
    candidates are listed with their reason; then the best candidate per
    group and the Pareto front of gain vs layers added.

    \b
    Examples:
      rys rank sweeps/Qwen3.5-4B-Q4_K_M
      rys rank shard1/ shard2/ --by reasoning
      rys rank sweeps/SmolLM2 --format json > ranking.json
    """
    from .rank import rank
    from .rank_format import render

    ranking = rank(list(dirs), by, suites=suites, seed=seed)
    for note in ranking.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(render(ranking, form), nl=False)


@cli.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Report file [default: DIR/report.md]; images are written beside it.")
@click.option("--by", default="combined", show_default=True, help="Which ranking picks the winner (as in rys rank).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
@_user_errors
def report(dirs, out, by, seed):
    """Write a Markdown report of a sweep: ranking, heatmaps, model card.

    \b
    The report holds the commands that reproduce its numbers, the ranking,
    a start x end heatmap of each probe group's delta (PNG, needs
    matplotlib), the Pareto view, the hold-out re-measurement and a
    model-card snippet for the winner. Prints the report's path.

    \b
    Examples:
      rys report sweeps/Qwen3.5-4B-Q4_K_M
      rys report shard1/ shard2/ -o REPORT.md
    """
    from .report import write_report

    click.echo(str(write_report(list(dirs), out, by=by, seed=seed)))


def _register() -> None:
    from .cli_probe import probe_command

    cli.add_command(probe_command)


_register()


def main():
    cli()


if __name__ == "__main__":
    main()
