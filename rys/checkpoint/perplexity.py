"""`rys eval`: a candidate GGUF against its base, measured by llama-perplexity.

As the llama.cpp community measures quantization: llama-perplexity runs the
base model over a text with `--kl-divergence-base LOGITS` (its perplexity,
and every next-token distribution saved), then the candidate with
`--kl-divergence-base LOGITS --kl-divergence` (its perplexity, and per token
KL(base || candidate) and whether both put the same token on top). The text
is cut into chunks of `ctx` tokens; only the second half of each chunk is
scored, so every scored token has at least ctx/2 tokens of context.

The base's perplexity comes from its own run: the KL run's "PPL(base)" is
computed from the saved logits, stored as 16-bit log-probabilities, and
reads about 0.5% off (SmolLM2 against itself: a ratio of 1.005).

The saved logits take about n_vocab x ctx/2 x chunks x 2 bytes (SmolLM2,
4 chunks of 512: 100 MB); they live in a temporary folder, removed after.
llama-perplexity's output is parsed by its labels; output without them is a
RysError naming the kept log.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..llamacpp import tools as llama_tools
from ..core.errors import RysError

_NUM = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
_FINAL = re.compile(rf"Final estimate: PPL = ({_NUM}) \+/- ({_NUM})", re.IGNORECASE)
_CHUNKS = re.compile(r"(?:calculating perplexity|computing) over (\d+) chunks, n_ctx=(\d+)")
# "Mean    KLD:   0.057878 ±   0.002471", "Same top p: 86.569 ± 1.068 %", "99.0%   KLD:   0.356741"
_STAT = re.compile(rf"^(?:[\d.]+ [DIWE] )?(?P<label>[A-Za-z0-9%.() /]+?)\s*:\s*(?P<value>{_NUM})\s*%?"
                   rf"(?:\s*±\s*(?P<err>{_NUM}))?\s*%?\s*$", re.IGNORECASE | re.MULTILINE)

# llama-perplexity's label (spaces collapsed) -> (our name, scale); percentages become fractions.
KL_STATS = {
    "Mean PPL(Q)": ("ppl_candidate", 1.0),
    "Mean KLD": ("kld_mean", 1.0),
    "99.0% KLD": ("kld_p99", 1.0),
    "Median KLD": ("kld_median", 1.0),
    "Maximum KLD": ("kld_max", 1.0),
    "Same top p": ("same_top", 0.01),
}


@dataclass(frozen=True)
class Evaluation:
    """A candidate against its base on one text (uncertainties are llama-perplexity's, one sigma)."""

    base: str
    candidate: str
    text: str
    ctx: int
    chunks: int
    ppl_base: float
    ppl_base_err: float
    ppl_candidate: float
    ppl_candidate_err: float
    ppl_ratio: float  # candidate / base, both from the models' own logits
    kld_mean: float
    kld_mean_err: float
    kld_p99: float
    kld_median: float
    kld_max: float
    same_top: float  # fraction of scored tokens whose most likely next token is the same
    same_top_err: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(self).items()}


def evaluate(base: str | Path, candidate: str | Path, text: str | Path, ctx: int = 512, chunks: int | None = None,
             threads: int | None = None, on_line: Callable[[str], None] | None = None) -> Evaluation:
    """Perplexity of base and candidate on `text`, and KL(base || candidate) per token.
    `threads`: llama.cpp's CPU threads (default: all cores)."""
    base, candidate, text = Path(base), Path(candidate), Path(text)
    for path in (base, candidate):  # llama-perplexity itself says what is wrong with a file that is there
        if not path.is_file():
            raise RysError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    if not text.is_file():
        raise RysError(f"{text}: no such text file")
    if ctx < 16:
        raise RysError(f"--ctx {ctx} is too small: use at least 16 tokens (llama.cpp's usual is 512)")
    if text.stat().st_size < 2 * ctx:  # a token is at least a byte, and llama-perplexity needs 2 x ctx tokens
        raise RysError(f"{text} is too short: measuring with --ctx {ctx} needs at least {2 * ctx} tokens")
    if chunks is not None and chunks < 1:
        raise RysError(f"--chunks {chunks}: give at least 1")
    if threads is not None and threads < 1:
        raise RysError(f"--threads {threads}: give at least 1")
    tool = llama_tools.tool("llama-perplexity")
    common = ["-f", text, "-c", str(ctx), *(["--chunks", str(chunks)] if chunks else []),
              *(["-t", str(threads)] if threads else [])]
    with tempfile.TemporaryDirectory(prefix="rys-eval-") as tmp:
        logits = Path(tmp) / "base-logits.bin"
        what = f"llama-perplexity on {base.name}"
        with llama_tools.run_log("llama-perplexity-base") as log:
            out = llama_tools.run([tool, "-m", base, *common, "--kl-divergence-base", logits], log, what,
                                  on_line=on_line)
            final = _FINAL.search(out)
            if final is None:
                raise llama_tools.unparsable(what, "final perplexity", log, f"is {text.name} at least 2 x {ctx} "
                                             f"tokens long? llama.cpp's log can lose its last lines")
        what = f"llama-perplexity --kl-divergence on {candidate.name}"
        with llama_tools.run_log("llama-perplexity-kl") as log:
            out = llama_tools.run([tool, "-m", candidate, *common, "--kl-divergence-base", logits,
                                   "--kl-divergence"], log, what, on_line=on_line)
            stats = parse_kl(out, what, log)
    ppl_base = float(final[1])
    return Evaluation(base=str(base), candidate=str(candidate), text=str(text), ctx=stats.pop("ctx"),
                      chunks=stats.pop("chunks"), ppl_base=ppl_base, ppl_base_err=float(final[2]),
                      ppl_ratio=stats["ppl_candidate"] / ppl_base if ppl_base else math.nan, **stats)


def parse_kl(out: str, what: str, log: Path) -> dict:
    """The figures of a `--kl-divergence` run's output, by KL_STATS names (with `_err` where it gives one)."""
    found = {}
    for m in _STAT.finditer(out):
        label = " ".join(m["label"].split())
        if label in KL_STATS and label not in found:
            found[label] = m
    missing = [label for label in KL_STATS if label not in found]
    chunks = _CHUNKS.search(out)
    if missing or chunks is None:
        raise llama_tools.unparsable(what, ", ".join(missing) or "the number of chunks", log)
    stats = {"chunks": int(chunks[1]), "ctx": int(chunks[2])}
    for label, (name, scale) in KL_STATS.items():
        m = found[label]
        stats[name] = float(m["value"]) * scale
        if name in ("ppl_candidate", "kld_mean", "same_top"):
            stats[f"{name}_err"] = float(m["err"]) * scale if m["err"] is not None else math.nan
    return stats
