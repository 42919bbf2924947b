"""`rys convert`, `rys quantize`, `rys eval`: checkpoints between HF and GGUF, and what a change costs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from ..core.text import human_bytes
from .common import sigterm_as_interrupt


class _Status:
    """The last line a llama.cpp tool printed, shown in place on a terminal (nothing elsewhere)."""

    def __init__(self, label: str):
        self.label = label
        self.live = sys.stderr.isatty()

    def __call__(self, line: str) -> None:
        if self.live and line.strip():
            width = shutil.get_terminal_size().columns - 1
            sys.stderr.write("\r\x1b[K" + f"{self.label}: {line.strip()}"[:width])
            sys.stderr.flush()

    def clear(self) -> None:
        if self.live:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _notes(notes) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)


@click.command("convert")
@click.argument("src", metavar="IN")
@click.argument("out", metavar="OUT")
@click.option("--outtype", metavar="TYPE",
              help="f32 or bf16 for GGUF -> checkpoint [default: bf16]; f32, f16, bf16 or q8_0 for "
                   "checkpoint -> GGUF [default: the converter's choice, f16 or bf16 as the checkpoint].")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def convert_command(src, out, outtype, force):
    """Convert a GGUF file to a Hugging Face checkpoint folder, or back.

    \b
    The direction comes from IN:
      IN.gguf   -> OUT folder: config.json, safetensors (dequantized),
                   tokenizer files; AutoModelForCausalLM and AutoTokenizer
                   load it. llama and qwen35 through rys's own mapping,
                   one tensor at a time (memory: about the largest tensor);
                   other architectures transformers knows (qwen2, qwen3,
                   gemma3, ...) through its GGUF loader, which holds the
                   whole model.
      IN folder -> OUT.gguf, by llama.cpp's own convert_hf_to_gguf.py from
                   the llama.cpp rys builds (`make install` fetches it).
    Needs the [torch] extra. OUT is written to a temporary name beside it and
    renamed, so a failure or Ctrl-C leaves nothing behind.

    \b
    Examples:
      rys convert SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf --outtype f32
      rys convert smollm2-pruned smollm2-pruned.gguf --outtype f16
    """
    from ..checkpoint.convert import convert

    sigterm_as_interrupt()
    status = _Status("converting")
    try:
        result = convert(src, out, outtype, force, on_line=status)
    finally:
        status.clear()
    _notes(result.notes)
    click.echo(f"{result.direction}: {human_bytes(result.n_bytes)} ({result.outtype}) by {result.how}", err=True)
    click.echo(str(result.out))


@click.command("quantize")
@click.argument("src", metavar="IN.gguf")
@click.argument("out", metavar="OUT.gguf")
@click.argument("qtype", metavar="TYPE")
@click.option("--allow-requantize", is_flag=True, help="Quantize a file that is already quantized (loses more).")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def quantize_command(src, out, qtype, allow_requantize, force):
    """Quantize a GGUF with llama.cpp's llama-quantize.

    \b
    TYPE is any type llama-quantize lists (Q4_K_M, Q5_K_M, Q6_K, Q8_0, ...;
    case does not matter). K-quants need rows that are a multiple of 256
    long: where a row is not (a 576-wide model, a pruned MLP of 7808),
    llama-quantize falls back to another type for that tensor, and rys says
    which tensors did, as notes.

    \b
    Examples:
      rys quantize model-f16.gguf model-Q4_K_M.gguf Q4_K_M
      rys quantize model-f16.gguf model-Q8_0.gguf q8_0 --force
    """
    from ..checkpoint.quantize import quantize

    sigterm_as_interrupt()
    status = _Status("quantizing")
    try:
        result = quantize(src, out, qtype, force, allow_requantize, on_line=status)
    finally:
        status.clear()
    _notes(result.notes())
    click.echo(f"{result.qtype}: {human_bytes(result.n_bytes_in)} -> {human_bytes(result.n_bytes)}", err=True)
    click.echo(str(result.out))


def _pm(value: float, err: float, digits: int) -> str:
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def _table(e) -> str:
    """The evaluation as aligned rows: label, then base and candidate where both have a value."""
    base, cand = _pm(e.ppl_base, e.ppl_base_err, 3), _pm(e.ppl_candidate, e.ppl_candidate_err, 3)
    width = max(len(Path(e.base).name), len(base))
    rows = [
        ("", f"{'base':<{width}}  candidate"),
        ("file", f"{Path(e.base).name:<{width}}  {Path(e.candidate).name}"),
        ("perplexity", f"{base:<{width}}  {cand}  (x{e.ppl_ratio:.4f})"),
        ("KL(base || candidate)", f"mean {_pm(e.kld_mean, e.kld_mean_err, 6)}, 99th percentile {e.kld_p99:.6f}, "
                                  f"median {e.kld_median:.6f}, max {e.kld_max:.4f}"),
        ("same top token", f"{100 * e.same_top:.2f} ± {100 * e.same_top_err:.2f} %"),
        ("text", f"{Path(e.text).name}: {e.chunks} chunks of {e.ctx} tokens, the second half of each scored"),
    ]
    w0 = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{w0}}  {text}".rstrip() for label, text in rows)


@click.command("eval")
@click.argument("base", metavar="BASE.gguf")
@click.argument("candidate", metavar="CAND.gguf")
@click.option("--text", "text", required=True, metavar="FILE", help="Plain text to measure on (e.g. wiki.test.raw).")
@click.option("--ctx", type=int, default=512, show_default=True, help="Tokens per chunk.")
@click.option("--chunks", type=int, help="Use only the first N chunks of the text [default: all].")
@click.option("--threads", type=int, help="CPU threads for llama.cpp [default: all cores].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_command(base, candidate, text, ctx, chunks, threads, as_json):
    """Compare CAND with BASE: perplexity, KL divergence, same top token.

    \b
    llama.cpp's llama-perplexity runs BASE over the text and saves its
    next-token distributions, then runs CAND and compares, token by token:
    perplexity of both, KL(base || candidate) (mean, 99th percentile) and
    how often both put the same token on top. This is how the llama.cpp
    community measures quantization; use it for pruning and layer surgery
    alike. The saved distributions take about vocabulary x ctx x chunks
    bytes in a temporary folder: use --chunks on large vocabularies.

    \b
    Examples:
      rys eval model-f16.gguf model-Q4_K_M.gguf --text wiki.test.raw --chunks 40
      rys eval base.gguf pruned.gguf --text wiki.test.raw --json
    """
    from ..checkpoint.perplexity import evaluate

    sigterm_as_interrupt()
    status = _Status("llama-perplexity")
    try:
        result = evaluate(base, candidate, text, ctx, chunks, threads, on_line=status)
    finally:
        status.clear()
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else _table(result))
