"""`rys quantize`: llama.cpp's llama-quantize on a GGUF, its fallbacks stated.

The types are the ones the built llama-quantize lists in its help (Q4_K_M,
Q8_0, ...), so rys accepts exactly what the pinned llama.cpp does. K-quants
work on blocks of 256 values along a row: a tensor whose rows are not a
multiple of 256 long (SmolLM2's 576-wide projections, a pruned 7808-wide
MLP's ffn_down) falls back to another type. llama-quantize warns once per
tensor; rys groups those warnings into notes (which tensors, which row length,
which type instead), because they change the size and quality a user expected.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf

from ..core import gguf_file
from ..llamacpp import tools as llama_tools
from ..core.errors import RysError
from ..core.files import atomic_path

UNQUANTIZED = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16}

# "  15  or  Q4_K_M  :  4.58G, +0.1754 ppl @ Llama-3-8B" and "          COPY    : only copy tensors"
_TYPE_LINE = re.compile(r"^\s+(?:\d+\s+or\s+)?([A-Z][A-Z0-9_]*)\s+:", re.MULTILINE)
# "warning: blk.0.attn_k.weight - ncols 576 not divisible by 256 (required for type q4_K) -> falling back to q5_0"
_FALLBACK = re.compile(r"(\S+)\s+-\s+ncols\s+(\d+)\s+not divisible by\s+(\d+)\s+\(required for type\s+(\S+)\)"
                       r"\s+->\s+falling back to\s+(\S+)")
_BLOCK = re.compile(r"^blk\.\d+\.")


@functools.lru_cache(maxsize=None)
def quant_types() -> tuple[str, ...]:
    """The type names llama-quantize accepts, read from its help."""
    tool = llama_tools.tool("llama-quantize")
    proc = subprocess.run([str(tool), "--help"], capture_output=True, text=True, errors="replace")
    text = proc.stdout + proc.stderr
    _, sep, table = text.partition("allowed quantization types")
    names = tuple(dict.fromkeys(_TYPE_LINE.findall(table))) if sep else ()
    if not names:
        raise RysError(f"could not read the quantization types in `{tool} --help` (a llama.cpp rys does not know?)")
    return names


def check_type(name: str) -> str:
    """`name` as llama-quantize spells it (case does not matter); RysError listing the types otherwise."""
    types = quant_types()
    found = {t.upper(): t for t in types}.get(name.upper())
    if found is None:
        raise RysError(f"unknown quantization type '{name}': llama-quantize accepts {', '.join(types)}")
    return found


@dataclass(frozen=True)
class Fallback:
    """Tensors of one kind that llama-quantize could not give the type it wanted."""

    kind: str  # the tensor name without its layer: "attn_q.weight", "token_embd.weight"
    ncols: int  # their row length
    block: int  # the block size the wanted type needs
    wanted: str
    used: str
    count: int

    def describe(self) -> str:
        return (f"{self.count} x {self.kind}: {self.wanted} -> {self.used} (rows of {self.ncols}, "
                f"not a multiple of {self.block})")


@dataclass(frozen=True)
class Quantized:
    out: Path
    qtype: str
    n_bytes_in: int
    n_bytes: int
    n_tensors: int
    fallbacks: tuple[Fallback, ...]

    def notes(self) -> list[str]:
        """One line per group of fallbacks, after a line with their total."""
        if not self.fallbacks:
            return []
        total = sum(f.count for f in self.fallbacks)
        head = (f"{total} of {self.n_tensors} tensors fell back from the type {self.qtype} wanted for them: "
                f"llama-quantize does so where a row is not a multiple of the type's block (256 for K-quants)")
        return [head] + [f.describe() for f in self.fallbacks]


def read_fallbacks(output: str) -> tuple[Fallback, ...]:
    """llama-quantize's fallback warnings, grouped by tensor kind, row length and types."""
    groups = Counter()
    for name, ncols, block, wanted, used in _FALLBACK.findall(output):
        groups[(_BLOCK.sub("", name), int(ncols), int(block), wanted, used)] += 1
    return tuple(Fallback(*key, count) for key, count in sorted(groups.items()))


def quantize(src: str | Path, out: str | Path, qtype: str, force: bool = False, allow_requantize: bool = False,
             on_line: Callable[[str], None] | None = None) -> Quantized:
    """Quantize the GGUF `src` to `qtype` at `out` with llama-quantize."""
    src, out = Path(src), Path(out)
    gf = gguf_file.read(src)
    if out.suffix.lower() != ".gguf":
        raise RysError(f"the output of quantize is a GGUF file: name it *.gguf, not {out.name}")
    name = check_type(qtype)
    quantized = sorted({t.type_name for t in gf.tensors if t.ggml_type not in UNQUANTIZED})
    if quantized and not allow_requantize:
        raise RysError(f"{src.name} is already quantized ({', '.join(quantized)}): quantizing it again loses more "
                       f"than quantizing from F16/F32; pass --allow-requantize to do it anyway")
    gguf_file.check_output(out, force, need_bytes=0)
    tool = llama_tools.tool("llama-quantize")
    flags = ["--allow-requantize"] if allow_requantize else []
    with atomic_path(out) as tmp, llama_tools.run_log("llama-quantize") as log:
        text = llama_tools.run([tool, *flags, src, tmp, name], log, f"llama-quantize on {src.name}", on_line=on_line)
        groups = read_fallbacks(text)
    return Quantized(out, name, gf.size, out.stat().st_size, len(gf.tensors), groups)
