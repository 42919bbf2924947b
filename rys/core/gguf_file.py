"""The only module that touches the GGUF format.

Reading goes through gguf-py's memory-mapped GGUFReader (only the header
pages are ever touched); writing goes through gguf-py's GGUFWriter for the
header, key/values and tensor infos, then tensor bytes are copied from the
source file with copy_file_range (a reflink or in-kernel copy where the
filesystem allows) or a bounded pread/pwrite loop. Memory therefore does not
grow with the size of the model.
One tensor at a time is read dequantized to float32 (read_tensor, by
gguf-py's dequantize in bounded steps; gguf_tensors.py looks tensors up by
name with it), and small files are written from numpy arrays (write_arrays).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

import gguf
import numpy as np

from .errors import RysError
from .files import atomic_path
from .keys import PAGE_PAD

COPY_CHUNK = 256 << 20  # bytes per copy_file_range call (keeps progress responsive)
FALLBACK_BUFFER = 8 << 20  # bounded buffer when the kernel cannot copy for us


@dataclass(frozen=True)
class Value:
    """One metadata value with the GGUF types needed to write it back unchanged."""

    value: Any
    vtype: gguf.GGUFValueType
    sub_type: gguf.GGUFValueType | None = None

    @property
    def is_array(self) -> bool:
        return self.vtype == gguf.GGUFValueType.ARRAY


@dataclass(frozen=True)
class Tensor:
    """A tensor's header entry; `offset` is absolute in its file."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]  # ggml order: ne[0] is the fastest-varying dimension
    n_bytes: int
    offset: int

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)


@dataclass
class GGUFFile:
    path: Path
    size: int
    version: int
    alignment: int
    fields: dict[str, Value]  # in file order, GGUF.* pseudo-fields excluded
    tensors: list[Tensor]  # in file order

    @property
    def arch(self) -> str:
        value = self.fields.get(gguf.Keys.General.ARCHITECTURE)
        if value is None:
            raise RysError(f"{self.path.name}: no {gguf.Keys.General.ARCHITECTURE} key: not a model file")
        return str(value.value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.fields.get(key)
        return default if value is None else value.value


def type_name(ggml_type: int) -> str:
    try:
        return gguf.GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type{ggml_type}"


def _field_value(field: gguf.ReaderField) -> Value:
    types = field.types
    if types[0] == gguf.GGUFValueType.ARRAY:
        if len(types) > 2:
            raise RysError(f"metadata key {field.name} is a nested array, which rys cannot rewrite")
        sub = types[1] if len(types) > 1 else gguf.GGUFValueType.UINT8
        return Value(field.contents(), types[0], sub)
    return Value(field.contents(), types[0])


def read(path: str | os.PathLike) -> GGUFFile:
    """Parse a GGUF file's header, key/values and tensor infos.

    Raises RysError for anything that is not a complete, single-file GGUF.
    """
    path = Path(path)
    if not path.exists():
        raise RysError(f"{path}: no such file")
    if path.is_dir():
        raise RysError(f"{path}: is a directory, not a GGUF file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise RysError(f"{path}: not a GGUF file (no GGUF magic at the start)")
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, IndexError, OverflowError, KeyError) as exc:
        raise RysError(f"{path}: truncated or corrupt GGUF file ({exc})") from None
    if reader.byte_order != "I":
        raise RysError(f"{path}: big-endian GGUF files are not supported")
    fields = {}
    for name, field in reader.fields.items():
        if not name.startswith("GGUF."):
            fields[name] = _field_value(field)
    version = int(reader.fields["GGUF.version"].parts[0][0])
    tensors = [
        Tensor(t.name, int(t.tensor_type), tuple(int(d) for d in t.shape), int(t.n_bytes), int(t.data_offset))
        for t in reader.tensors
    ]
    for t in tensors:
        if t.offset + t.n_bytes > size:
            raise RysError(f"{path}: truncated GGUF file (tensor {t.name} ends past the end of the file)")
    split_count = fields.get(gguf.Keys.Split.LLM_KV_SPLIT_COUNT)
    if split_count is not None and int(split_count.value) > 1:
        raise RysError(f"{path}: split GGUF files are not supported; merge the shards first with llama-gguf-split --merge")
    gf = GGUFFile(path, size, version, int(reader.alignment), fields, tensors)
    del reader  # drop the memory map before anyone copies from the file
    return gf


@dataclass(frozen=True)
class Placement:
    """One output tensor: a new name, taking its bytes from `source`."""

    name: str
    source: Tensor


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def data_size(placements: list[Placement], alignment: int) -> int:
    return sum(_pad(p.source.n_bytes, alignment) for p in placements)


PAGE = 4096  # copies between offsets congruent modulo a page are faster, and can be reflinks


def _writer(path: Path, fields: dict[str, Value]) -> gguf.GGUFWriter:
    """A writer for `path` holding `fields` (general.alignment sets the data alignment)."""
    arch = str(fields[gguf.Keys.General.ARCHITECTURE].value)
    writer = gguf.GGUFWriter(path, arch)
    for key, val in fields.items():
        if key == gguf.Keys.General.ARCHITECTURE:  # the writer adds it itself
            continue
        if key == gguf.Keys.General.ALIGNMENT:
            writer.add_custom_alignment(int(val.value))
            continue
        writer.add_key_value(key, val.value, val.vtype, val.sub_type)
    return writer


def _write_header(writer: gguf.GGUFWriter, path: Path) -> None:
    """Header, key/values and tensor infos; the writer is left open after them."""
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.fout[0].flush()


def _header(path: Path, fields: dict[str, Value], placements: list[Placement], pad: int) -> gguf.GGUFWriter:
    """Write header, key/values and tensor infos to `path`; the writer is left open after them."""
    writer = _writer(path, fields)
    writer.add_key_value(PAGE_PAD, " " * pad, gguf.GGUFValueType.STRING)
    for p in placements:
        t = p.source
        # GGUFWriter wants numpy order (reversed ne); a non-uint8 dtype keeps the shape as given.
        writer.add_tensor_info(p.name, tuple(reversed(t.shape)), np.dtype(np.float32), t.n_bytes, raw_dtype=t.ggml_type)
    _write_header(writer, path)
    return writer


def _page_pad(out: Path, src: GGUFFile, fields: dict[str, Value], placements: list[Placement]) -> int:
    """Length of the PAGE_PAD string that makes the output's data section start
    at the same offset modulo a page as the source's (measured with a dry run
    of the header: its size depends on every key)."""
    alignment = int(fields[gguf.Keys.General.ALIGNMENT].value) if gguf.Keys.General.ALIGNMENT in fields else 32
    if not src.tensors or PAGE % alignment:
        return 0
    dry = out.with_name(out.name + ".header")
    try:
        writer = _header(dry, fields, placements, 0)
        end = writer.fout[0].tell()
        writer.close()
    finally:
        dry.unlink(missing_ok=True)
    src_start = min(t.offset for t in src.tensors)
    start = _pad(end, alignment)
    target = start + (src_start - start) % PAGE  # a multiple of the alignment too
    return target - end


def write(
    out: Path,
    src: GGUFFile,
    fields: dict[str, Value],
    placements: list[Placement],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write a GGUF at `out` with these fields and tensors, bytes copied from `src`.

    `fields` must hold general.architecture; general.alignment (if present)
    sets the data alignment, so every tensor keeps the alignment of its source.
    """
    writer = _header(out, fields, placements, _page_pad(out, src, fields, placements))
    alignment = writer.data_alignment
    fout = writer.fout[0]
    data_start = _pad(fout.tell(), alignment)
    dst_fd = fout.fileno()
    with open(src.path, "rb") as fsrc:
        src_fd = fsrc.fileno()
        for src_off, dst_off, n in _copy_runs(placements, data_start, alignment):
            _copy_range(src_fd, dst_fd, src_off, dst_off, n, progress)
    end = data_start + data_size(placements, alignment)
    os.ftruncate(dst_fd, end)  # padding after the last tensor (holes read as zeros)
    os.fsync(dst_fd)
    writer.close()


def _copy_runs(placements: list[Placement], data_start: int, alignment: int) -> Iterator[tuple[int, int, int]]:
    """(source offset, output offset, length) runs, merging tensors that are
    adjacent in both files so a whole layer is usually one copy."""
    run = None
    dst = data_start
    for p in placements:
        src, n = p.source.offset, p.source.n_bytes
        if run and run[0] + _pad(run[2], alignment) == src and run[1] + _pad(run[2], alignment) == dst:
            run = (run[0], run[1], _pad(run[2], alignment) + n)
        else:
            if run:
                yield run
            run = (src, dst, n)
        dst += _pad(n, alignment)
    if run:
        yield run


def _copy_range(src_fd: int, dst_fd: int, src_off: int, dst_off: int, n: int,
                progress: Callable[[int], None] | None) -> None:
    use_kernel = hasattr(os, "copy_file_range")
    while n > 0:
        step = min(n, COPY_CHUNK)
        done = 0
        if use_kernel:
            try:
                done = os.copy_file_range(src_fd, dst_fd, step, src_off, dst_off)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                use_kernel = False
        if not use_kernel:
            done = _copy_buffered(src_fd, dst_fd, src_off, dst_off, step)
        if done == 0:
            raise RysError("source file ended early while copying tensor data (was it truncated while rys ran?)")
        src_off += done
        dst_off += done
        n -= done
        if progress:
            progress(done)


def _copy_buffered(src_fd: int, dst_fd: int, src_off: int, dst_off: int, n: int) -> int:
    done = 0
    while done < n:
        chunk = os.pread(src_fd, min(FALLBACK_BUFFER, n - done), src_off + done)
        if not chunk:
            break
        os.pwrite(dst_fd, chunk, dst_off + done)
        done += len(chunk)
    return done


# Tensor values (numpy axis order: ggml's ne reversed)
F32 = np.dtype(np.float32)
DEQUANT_STEP = 16 << 20  # float32 bytes dequantized per step: bounds gguf-py's temporaries


def read_tensor(fh: BinaryIO, t: Tensor) -> np.ndarray:
    """Tensor `t` of the GGUF file open (binary) as `fh`, dequantized to float32.

    Any type gguf-py dequantizes (F32, F16, BF16, the Q, K, IQ and TQ quants,
    MXFP4...); RysError for the others. Rows are read and dequantized a few at
    a time into the result: memory is the result plus about DEQUANT_STEP.
    """
    qtype = gguf.GGMLQuantizationType(t.ggml_type)  # read() refuses types gguf-py does not know
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    row_bytes, n_rows = t.shape[0] // block * type_size, int(np.prod(t.shape[1:]))
    if t.shape[0] % block or row_bytes * n_rows != t.n_bytes:
        raise RysError(f"tensor '{t.name}': {t.n_bytes} bytes are not {t.type_name} rows of {t.shape[0]} values")
    out = np.empty((n_rows, t.shape[0]), F32)
    step = max(1, DEQUANT_STEP // max(1, out.itemsize * t.shape[0]))
    raw = np.empty(min(step, n_rows) * row_bytes, np.uint8)
    fh.seek(t.offset)
    for r in range(0, n_rows, step):
        rows = raw[: min(step, n_rows - r) * row_bytes]
        if fh.readinto(rows) != rows.size:
            raise RysError(f"tensor '{t.name}' ends past the end of {fh.name} (was it truncated?)")
        try:
            out[r : r + step] = gguf.quants.dequantize(rows.reshape(-1, row_bytes), qtype)
        except NotImplementedError:
            raise RysError(f"tensor '{t.name}' is {t.type_name}, which gguf-py cannot dequantize") from None
    return out.reshape(tuple(reversed(t.shape)))


def infer_value(value: Any) -> Value:
    """A Python value with the GGUF type llama.cpp expects for it: counts and
    lengths are read as uint32; arrays keep gguf-py's element types (bool,
    int32 as in rope sections, float32)."""
    V = gguf.GGUFValueType
    if isinstance(value, (list, tuple)):
        if not value:
            raise RysError("cannot write an empty metadata array")
        return Value(list(value), V.ARRAY, V.get_type(value[0]))
    if isinstance(value, bool):
        return Value(value, V.BOOL)
    if isinstance(value, (int, np.integer)):
        return Value(value, V.UINT32)
    if isinstance(value, (float, np.floating)):
        return Value(value, V.FLOAT32)
    if isinstance(value, str):
        return Value(value, V.STRING)
    raise RysError(f"cannot write a metadata value of type {type(value).__name__}")


def write_arrays(
    path: str | os.PathLike,
    metadata: Mapping[str, Any],
    tensors: Iterable[tuple[str, np.ndarray]],
    add_keys: Callable[[gguf.GGUFWriter], None] | None = None,
) -> None:
    """Write an all-F32 GGUF: `metadata` (a Value keeps its GGUF type, other
    values get theirs from infer_value), then the keys add_keys(writer) adds
    (a tokenizer, with gguf-py's add_* helpers), then the tensors. Each array
    is converted and written in turn, so at most one tensor's F32 copy is held
    at a time."""
    arch_key = gguf.Keys.General.ARCHITECTURE
    if arch_key not in metadata:
        raise RysError(f"metadata has no '{arch_key}'")
    path = Path(path)
    tensors = list(tensors)  # two passes: infos, then data (references, not copies)
    writer = _writer(path, {key: value if isinstance(value, Value) else infer_value(value)
                            for key, value in metadata.items()})
    if add_keys is not None:
        add_keys(writer)
    for name, x in tensors:
        writer.add_tensor_info(name, np.shape(x), F32, int(np.size(x)) * F32.itemsize)
    _write_header(writer, path)
    for _, x in tensors:
        writer.write_tensor_data(np.ascontiguousarray(x, dtype=F32))
    writer.close()


def check_output(out: Path, force: bool, need_bytes: int) -> None:
    """Refuse an existing output (without force), a missing folder, or too little space."""
    if out.is_dir():
        raise RysError(f"{out} is a directory")
    if out.exists() and not force:
        raise RysError(f"{out} exists; use --force to overwrite")
    folder = out.parent
    if not folder.is_dir():
        raise RysError(f"output folder {folder} does not exist")
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise RysError(f"not enough free space in {folder}: need {need_bytes / 1e9:.2f} GB, have {free / 1e9:.2f} GB")


@contextlib.contextmanager
def atomic_output(out: Path, force: bool, need_bytes: int) -> Iterator[Path]:
    """Yield a temporary path beside `out`; rename it to `out` only on success.

    Refuses an existing `out` without `force`, and a target folder with less
    free space than `need_bytes`. On any exception (Ctrl-C included) the
    temporary file is removed, so no partial output is ever left behind.
    """
    check_output(out, force, need_bytes)
    with atomic_path(out) as tmp:
        yield tmp
