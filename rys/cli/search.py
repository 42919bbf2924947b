"""`rys sweep`, `rys rank`, `rys report`: the circuit search and what it found."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ..core.errors import RysError
from ..search.presets import Preset, load_preset
from .common import sigterm_as_interrupt

# Options of `rys sweep` that are not sweep settings (and so not in a preset).
NOT_SETTINGS = ("model", "preset", "out", "quiet")


@click.command("sweep")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--preset", default=None, help="A file of these options (NAME from sweeps/, or FILE.toml); "
              "options given here win over its values.")
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
              help="Result folder [default: sweeps/<model stem>/, or sweeps/<preset>/<model stem>/].")
@click.option("--keep-models", is_flag=True, help="Keep each candidate's GGUF in OUT/models.")
@click.option("--server-bin", default=None, help="llama-server binary [default: $RYS_LLAMA_SERVER, PATH, make llama-server].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="llama-server threads [default: physical cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def sweep_command(ctx, model, preset, block, stride, start, end, blocks, suite, limit, holdout, holdout_top, seed,
                  mode, eq_revise, layout, concurrency, prefilter, kl_threshold, halving, shard, out, keep_models,
                  server_bin, threads, quiet):
    """Search for the block that helps most: build, serve and probe every candidate.

    \b
    Candidates are the baseline plus one duplicated block of --block layers
    starting at --start, --start + --stride, ... that ends before --end (or the
    --blocks list). Each is built into a scratch folder (RAM-backed where memory
    allows), served with llama-server, scored on the same items as the
    baseline, then deleted. Every scored item is saved at once in OUT: run the
    same command again to resume; nothing already scored is recomputed.

    \b
    Presets (sweeps/*.toml): seed-pass1 (--block 8 --stride 4), seed-pass2
    (--block 4 --stride 1 --start 8 --end 32), demo (a quick SmolLM2 sweep).

    \b
    Examples:
      rys sweep Qwen3.5-4B-Q4_K_M.gguf --preset seed-pass1
      rys sweep Qwen3.5-4B-Q4_K_M.gguf --block 4 --stride 1 --start 8 --end 32
      rys sweep model.gguf --blocks 27-30,28-31 --suite math,eq --limit 40 --holdout 40
      rys rank sweeps/seed-pass1/Qwen3.5-4B-Q4_K_M
    """
    from ..search.sweep import Events, Sweep, SweepConfig

    sigterm_as_interrupt()
    settings = dict(block=block, stride=stride, start=start, end=end, blocks=blocks, suite=suite, limit=limit,
                    holdout=holdout, holdout_top=holdout_top, seed=seed, mode=mode, eq_revise=eq_revise,
                    layout=layout, concurrency=concurrency, prefilter=prefilter, kl_threshold=kl_threshold,
                    halving=halving, shard=shard, keep_models=keep_models, server_bin=server_bin, threads=threads)
    chosen = load_preset(preset) if preset else None
    if chosen:
        settings.update(preset_settings(ctx, chosen))
    cfg = SweepConfig(model=model, preset=chosen.name if chosen else None, **settings)
    out_dir = Path(out) if out else default_out(model, chosen)
    events = Events() if quiet else _progress_events()
    sw = Sweep(cfg, out_dir, events)
    n = sum(1 for p in sw.planned if not p.skip_reason)
    click.echo(f"{len(sw.planned)} candidates ({n} to score, {len(sw.planned) - n} skipped), "
               f"{sum(len(s.items) for s in sw.search_suites)} items each; results in {out_dir}", err=True)
    result = sw.run()
    events.close() if hasattr(events, "close") else None
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(result.counts.items())), err=True)
    click.echo(str(result.folder))


def default_out(model: str, preset: Preset | None) -> Path:
    """sweeps/<model stem>/, or sweeps/<preset>/<model stem>/ for a preset's sweep."""
    stem = Path(model).stem
    return Path("sweeps") / preset.name / stem if preset else Path("sweeps") / stem


def preset_settings(ctx: click.Context, preset: Preset) -> dict:
    """The preset's values for the options the command line left at their defaults,
    checked and converted as the command line's own values are."""
    params = {p.name: p for p in ctx.command.params if p.name not in NOT_SETTINGS}
    out = {}
    for key, value in preset.options.items():
        param = params.get(key)
        if param is None:
            raise RysError(f"{preset.path}: {key} is not a sweep option; a preset may set "
                           f"{', '.join(sorted(params))}")
        try:
            converted = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise RysError(f"{preset.path}: {key} = {value!r}: {exc.message}") from None
        if ctx.get_parameter_source(key) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
            out[key] = converted
    return out


def _progress_events():
    """tqdm bars on stderr: one over candidates, one over the items of the current candidate."""
    from tqdm import tqdm

    from ..search.sweep import Events

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


@click.command("rank")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--by", default="combined", show_default=True,
              help="Rank by combined (sum of per-group z-scores of the deltas, as RYS ranks) "
                   "or by one group's delta: math, eq, reasoning.")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json", "md"]), default="table",
              show_default=True, help="Output format.")
@click.option("--suites", is_flag=True, help="Also show every suite on its own (math.arith, ...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
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
    from ..search.ranking import rank
    from ..search.ranking_output import render

    ranking = rank(list(dirs), by, suites=suites, seed=seed)
    for note in ranking.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(render(ranking, form), nl=False)


@click.command("report")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Report file [default: DIR/report.md]; images are written beside it.")
@click.option("--by", default="combined", show_default=True, help="Which ranking picks the winner (as in rys rank).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
def report_command(dirs, out, by, seed):
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
    from ..search.report import write_report

    click.echo(str(write_report(list(dirs), out, by=by, seed=seed)))


