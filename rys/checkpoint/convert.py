"""`rys convert`: a GGUF to an HF checkpoint folder, or a folder to a GGUF.

The direction comes from the input: a .gguf file is dequantized into a
folder (hf_export.py); a checkpoint folder goes through llama.cpp's own
convert_hf_to_gguf.py from the pinned source, run in a child process with
that source's gguf-py on PYTHONPATH (not the gguf package rys itself uses,
which may be older or newer than the converter expects). rys does not write a
second converter; it only knows the converter's gotchas (`--no-mtp`).
Outputs are written atomically; an existing output is refused without force.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..llamacpp import tools as llama_tools
from ..core.errors import RysError
from ..core.files import atomic_path
from ..core.gguf_file import check_output
from .hf.from_gguf import DTYPES, check_checkpoint, gguf_to_folder, need_torch
from ..llamacpp.child import telling_line

GGUF_OUTTYPES = ("f32", "f16", "bf16", "q8_0")  # convert_hf_to_gguf.py's --outtype values rys passes on
OUTTYPES = tuple(dict.fromkeys(GGUF_OUTTYPES + DTYPES))
HF_DEFAULT = "bf16"  # what a GGUF is dequantized to unless told otherwise

# Checkpoint classes whose converter (conversion/qwen.py, _QwenMtpMixin) adds
# multi-token-prediction layers unless told `--no-mtp`: without mtp.* tensors
# it fails an assertion, or (when config.json still declares an MTP layer)
# writes a file llama.cpp cannot load.
MTP_ARCHITECTURES = ("Qwen3NextForCausalLM", "Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration",
                     "Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration")


@dataclass(frozen=True)
class Converted:
    """What convert wrote."""

    direction: str  # "gguf->hf" or "hf->gguf"
    out: Path
    outtype: str  # "auto" when the converter chose (f16, or bf16 for a bf16 checkpoint)
    how: str  # who converted
    n_bytes: int
    notes: tuple[str, ...] = ()


def convert(src: str | Path, out: str | Path, outtype: str | None = None, force: bool = False,
            on_line: Callable[[str], None] | None = None) -> Converted:
    """Convert `src` (a .gguf file or an HF checkpoint folder) to the other format at `out`."""
    src, out = Path(src), Path(out)
    if outtype is not None and outtype not in OUTTYPES:
        raise RysError(f"unknown --outtype '{outtype}': choose one of {', '.join(OUTTYPES)}")
    if not src.exists():
        raise RysError(f"{src}: no such file or folder")
    if src.is_dir():
        return to_gguf(src, out, outtype, force, on_line)
    if src.suffix.lower() == ".gguf" or _has_gguf_magic(src):
        return to_hf(src, out, outtype or HF_DEFAULT, force)
    raise RysError(f"{src} is neither a .gguf file nor a Hugging Face checkpoint folder")


def _has_gguf_magic(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"GGUF"


def to_hf(src: Path, out: Path, dtype: str, force: bool) -> Converted:
    """A GGUF file -> an HF checkpoint folder (see hf_export.py)."""
    if dtype not in DTYPES:
        raise RysError(f"a GGUF converts to a checkpoint in {' or '.join(DTYPES)}; --outtype {dtype} is for "
                       f"checkpoint -> GGUF")
    if out.suffix.lower() == ".gguf":
        raise RysError(f"{src.name} is a GGUF file: it converts to a checkpoint folder, not to {out.name}")
    written = gguf_to_folder(src, out, dtype, force)
    how = "transformers' GGUF loader" if written.loader == "transformers" else f"rys's {written.arch} mapping"
    return Converted("gguf->hf", out, dtype, how, written.n_bytes,
                     (f"{written.arch}, {written.n_params / 1e6:.1f}M parameters",))


def to_gguf(src: Path, out: Path, outtype: str | None, force: bool,
            on_line: Callable[[str], None] | None = None) -> Converted:
    """An HF checkpoint folder -> a GGUF file, by llama.cpp's convert_hf_to_gguf.py."""
    check_checkpoint(src)
    if outtype is not None and outtype not in GGUF_OUTTYPES:
        raise RysError(f"a checkpoint converts to GGUF in {', '.join(GGUF_OUTTYPES)}, not '{outtype}'")
    if out.suffix.lower() != ".gguf":
        raise RysError(f"the output of converting a checkpoint folder is a GGUF file: name it *.gguf, not {out.name}")
    check_output(out, force, need_bytes=0)
    need_torch("llama.cpp's converter")
    flags, notes = converter_flags(src)
    with atomic_path(out) as tmp:
        _run_converter(src, tmp, [*(["--outtype", outtype] if outtype else []), *flags], on_line)
    return Converted("hf->gguf", out, outtype or "auto", "llama.cpp's convert_hf_to_gguf.py",
                     out.stat().st_size, tuple(notes))


@contextlib.contextmanager
def vocab_only(src: Path) -> Iterator[Path]:
    """The checkpoint's vocabulary and hyperparameters as llama.cpp's converter
    writes them (--vocab-only: no tensors), in a temporary GGUF (rys prune --per-layer)."""
    with tempfile.TemporaryDirectory(prefix="rys-vocab-") as tmp:
        out = Path(tmp) / "vocab.gguf"
        _run_converter(src, out, ["--vocab-only"])
        yield out


def _run_converter(src: Path, out: Path, extra: list[str], on_line: Callable[[str], None] | None = None) -> None:
    """convert_hf_to_gguf.py from the pinned llama.cpp, with its own gguf-py (not rys's), into `out`."""
    script = llama_tools.converter()
    env = {"PYTHONPATH": str(script.parent / "gguf-py")}
    with llama_tools.run_log("convert_hf_to_gguf") as log:
        llama_tools.run([sys.executable, script, src, "--outfile", out, *extra], log,
                        f"llama.cpp's convert_hf_to_gguf.py on {src.name}", env=env, on_line=on_line,
                        telling=python_telling_line)
        if not out.is_file():
            raise RysError(f"llama.cpp's convert_hf_to_gguf.py wrote no {out.name}; log: {log}")


def converter_flags(folder: Path) -> tuple[list[str], list[str]]:
    """Extra converter arguments this checkpoint needs, and why (one note each)."""
    config = _read_config(folder)
    architectures = config.get("architectures") or []
    if any(a in MTP_ARCHITECTURES for a in architectures) and not any(
            n.startswith(("mtp.", "model.mtp.")) for n in tensor_names(folder)):
        return ["--no-mtp"], ["--no-mtp: the checkpoint has no multi-token-prediction (mtp.*) tensors"]
    return [], []


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise RysError(f"cannot read {folder / 'config.json'}: {e}") from None


def tensor_names(folder: Path) -> list[str]:
    """The tensor names of a checkpoint's safetensors files (from their headers)."""
    from safetensors import safe_open

    names = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), "np") as fh:
                names += list(fh.keys())
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise RysError(f"{path}: not a readable safetensors file ({e})") from None
    return names


def python_telling_line(tail: list[str]) -> str:
    """The line of a Python program's output that says why it failed: the
    exception that ended it (with the assertion's source line when it has no
    message), else its first `ERROR:` log line, else llama.cpp's rules."""
    lines = [line.strip() for line in tail if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        last = lines[-1]
        return f"{last} at `{lines[-2]}`" if last == "AssertionError" and len(lines) > 1 else last
    errors = [line.split(":", 2)[-1].strip() for line in lines if line.startswith("ERROR:")]
    return errors[0] if errors else telling_line(tail)
