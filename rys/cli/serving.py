"""`rys serve` (a model behind llama-server until Ctrl-C) and `rys probe`
(score a running OpenAI-compatible server, or a GGUF served for the run)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import click

from ..core.errors import RysError
from ..core.files import write_atomic
from .common import sigterm_as_interrupt


def format_line(s: dict) -> str:
    """One line per suite: score, 95% interval, n, parse rate, tokens, seconds."""
    f = "{:.1f}" if s["scale"] == 100 else "{:.3f}"
    line = (f"{s['suite']:<22} {f.format(s['score'])} [{f.format(s['ci_low'])}, {f.format(s['ci_high'])}]"
            f"  n={s['n']}  parsed {s['parse_rate']:.0%}  tokens {s['tokens']}  {s['seconds']:.1f}s")
    if "p_correct" in s:
        line += f"  p(correct) {s['p_correct']:.3f}"
    if s["failed"]:
        line += f"  failed {s['failed']}"
    return line


def json_line(row: dict) -> str:
    """A row as one line of JSON, UTF-8 where it can be; a row holding a lone
    surrogate (which UTF-8 cannot hold) is written with \\u escapes instead."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    return line + "\n"


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """One JSON line per row, written atomically."""
    write_atomic(path, "".join(json_line(row) for row in rows).encode("utf-8"))


def check_writable(path: Path) -> None:
    """Find out before a long run, not after it, that the rows cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as e:
        raise RysError(f"cannot write {path}: {e.strerror}") from None


@click.command("serve")
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
def serve_command(model, port, host, ctx, slots, threads, server_bin, log_path, extra):
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
    from ..search.serving.server import LlamaServer

    sigterm_as_interrupt()
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


@click.command("probe")
@click.argument("model_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--url", default=None, help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080 "
              "(or give MODEL.gguf instead and rys serves it with llama-server for the run).")
@click.option("--suite", "spec", required=True,
              help="Comma-separated suites or aliases (math, eq, reasoning, math.arith, ...), "
                   "or data sets by path: gsm8k=FILE.jsonl, bbh=TASK.json[:COT.txt], eqbench=FILE.json.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Items per suite (generated suites make this many; data sets are sampled by --seed).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated items, sampling and the bootstrap.")
@click.option("--mode", type=click.Choice(["generate", "choice"]), default="generate", show_default=True,
              help="generate: answer read from the completion; choice: option letter read from next-token probabilities.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Requests in flight at once.")
@click.option("--eq-revise", is_flag=True,
              help="Ask EQ items as EQ-Bench v2.0 did: first pass, critique and revised scores (600 tokens) "
                   "instead of v2.1's four ratings alone (60 tokens).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
              help="Seconds to wait for one answer.")
@click.option("--model", default="rys", show_default=True, help="Model name sent with each request (llama-server ignores it).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {suite, score, ci_low, ci_high, n, parse_rate}.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write one JSON line per item (completion, extracted answer, score, latency, tokens).")
@click.option("--server-bin", default=None, help="llama-server binary, when MODEL.gguf is given.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="llama-server threads, when MODEL.gguf is given.")
def probe_command(model_file, url, spec, limit, seed, mode, concurrency, eq_revise, timeout, model, as_json, out,
                  server_bin, threads):
    """Score a model server (or MODEL.gguf, served for the run) on math, EQ and reasoning probes.

    \b
    Examples:
      rys probe Qwen3.5-4B-Q4_K_M.gguf --suite math,eq,reasoning --limit 20
      rys probe --url http://127.0.0.1:8080 --suite math,eq,reasoning --limit 20
      rys probe --url http://127.0.0.1:8080 --suite reasoning --mode choice --json
      rys probe --url http://127.0.0.1:8080 --suite gsm8k=train.jsonl --limit 100 --out rows.jsonl
    """
    from tqdm import tqdm

    from ..search.probing import run_suites

    bar = tqdm(total=0, unit="item", disable=None, leave=False)

    def progress(suite: str, done: int, total: int) -> None:
        if done == 1:
            bar.total += total
            bar.set_description(suite)
        bar.update(1)

    try:
        if (model_file is None) == (url is None):
            raise RysError("give either MODEL.gguf or --url (not both)")
        if out is not None:
            check_writable(out)
        with contextlib.ExitStack() as stack:
            if model_file is not None:
                from ..search.serving.server import LlamaServer

                log = Path(tempfile.gettempdir()) / f"rys-probe-{os.getpid()}.log"
                srv = stack.enter_context(LlamaServer(model_file, log_path=log, slots=concurrency,
                                                      server_bin=server_bin, threads=threads))
                url = srv.base_url
            results = run_suites(url, spec, limit=limit, seed=seed, mode=mode, concurrency=concurrency,
                                 timeout=timeout, model=model, progress=progress, eq_revise=eq_revise)
        if out is not None:
            write_jsonl_atomic(out, results.rows)
    finally:
        bar.close()
    if as_json:
        keys = ("suite", "score", "ci_low", "ci_high", "n", "parse_rate")
        click.echo(json.dumps([{k: s[k] for k in keys} for s in results.summaries], indent=2))
    else:
        for s in results.summaries:
            click.echo(format_line(s))
