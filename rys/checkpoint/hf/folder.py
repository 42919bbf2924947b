"""HF checkpoint folders, read and written one layer at a time (for rys prune).

A checkpoint is config.json plus safetensors weights: one model.safetensors,
or shards listed in model.safetensors.index.json. Reading opens every file
with safetensors' safe_open (memory-mapped) and loads only the tensors asked
for. Writing lays out each output file first (names, dtypes and shapes are
known before any data), writes its header, then puts every tensor at its
offset when it comes: a copy holds one layer's tensors in memory, whatever
the size of the model. An output folder is built beside its final place
and renamed into it at the end (rys.core.files.atomic_folder).
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
from safetensors import SafetensorError, safe_open

from ...core.errors import RysError

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
# Never copied into a pruned folder: other weight formats would carry the unpruned model.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".npz")

# safetensors dtype name -> (torch dtype, bytes per element)
DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
    "F8_E4M3": (torch.float8_e4m3fn, 1), "F8_E5M2": (torch.float8_e5m2, 1),
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a checkpoint stores it: no data, only where and what."""

    name: str
    dtype: str  # safetensors' name: "F32", "BF16", ...
    shape: tuple[int, ...]
    file: str  # file name inside the folder

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.dtype][1]


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise RysError(f"cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RysError(f"{path}: not valid JSON ({e})") from None


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def weight_files(folder: Path) -> tuple[dict[str, str] | None, list[str]]:
    """(the index's weight map or None, the safetensors files in order)."""
    if (folder / INDEX).exists():
        weight_map = read_json(folder / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise RysError(f"{folder / INDEX}: no weight_map")
        files = list(dict.fromkeys(weight_map.values()))
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise RysError(f"{folder / INDEX} lists {missing[0]}, which is not in {folder}")
        return weight_map, files
    if (folder / SINGLE).is_file():
        return None, [SINGLE]
    raise RysError(f"{folder} has no safetensors weights ({SINGLE} or {INDEX})")


class Checkpoint:
    """An HF checkpoint folder: its config and a lazy view of its tensors."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise RysError(f"{self.folder}: no such folder" if not self.folder.exists() else f"{self.folder} is not a folder")
        if not (self.folder / CONFIG).is_file():
            raise RysError(f"{self.folder} is not a Hugging Face checkpoint: no {CONFIG}")
        self.config = read_json(self.folder / CONFIG)
        self.weight_map, self.files = weight_files(self.folder)
        self.tensors = self._infos()

    @contextlib.contextmanager
    def _open(self, file: str):
        """One file, memory-mapped only while it is read (mapped pages would count as the process's memory)."""
        try:
            handle = safe_open(str(self.folder / file), framework="pt")
        except (SafetensorError, OSError) as e:
            raise RysError(f"{self.folder / file}: not a readable safetensors file ({e})") from None
        with handle as f:
            yield f

    def _infos(self) -> dict[str, TensorInfo]:
        infos = {}
        for file in self.files:
            with self._open(file) as handle:
                for name in handle.keys():
                    s = handle.get_slice(name)
                    if s.get_dtype() not in DTYPES:
                        raise RysError(f"{file}: tensor {name} has dtype {s.get_dtype()}, which rys cannot copy")
                    infos[name] = TensorInfo(name, s.get_dtype(), tuple(s.get_shape()), file)
        wrong = sorted(n for n, f in (self.weight_map or {}).items() if n not in infos or infos[n].file != f)
        if wrong:
            raise RysError(f"{self.folder / INDEX} puts {wrong[0]} in {self.weight_map[wrong[0]]}, which does not hold it")
        return infos

    @property
    def n_layers(self) -> int:
        return int(self.config.get("num_hidden_layers") or 0)

    def layer_names(self, index: int) -> list[str]:
        """The names of layer `index`'s tensors, sorted."""
        return sorted(n for n in self.tensors if (m := LAYER.match(n)) and int(m.group(1)) == index)

    def global_names(self) -> list[str]:
        """Tensors outside the decoder layers (embedding, final norm, lm_head, ...), sorted."""
        return sorted(n for n in self.tensors if not LAYER.match(n))

    def stray_layers(self) -> list[int]:
        """Layer indices of tensors at or beyond num_hidden_layers."""
        found = {int(m.group(1)) for n in self.tensors if (m := LAYER.match(n))}
        return sorted(i for i in found if i >= self.n_layers)

    def read(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Load these tensors (and only these) into memory."""
        names = list(names)
        out = {}
        for file in dict.fromkeys(self.tensors[n].file for n in names):
            with self._open(file) as handle:
                out.update((n, handle.get_tensor(n)) for n in names if self.tensors[n].file == file)
        return {n: out[n] for n in names}

    def read_layer(self, index: int) -> dict[str, torch.Tensor]:
        """Layer `index`'s tensors, keyed by their names inside the layer ("mlp.up_proj.weight")."""
        prefix = f"model.layers.{index}."
        return {n[len(prefix):]: t for n, t in self.read(self.layer_names(index)).items()}

    def other_files(self) -> list[Path]:
        """Files beside the weights that a copy keeps as they are (tokenizer, generation config, ...)."""
        return sorted(p for p in self.folder.iterdir()
                      if p.is_file() and p.name not in (CONFIG, INDEX) and not p.name.endswith(WEIGHT_SUFFIXES))


# --------------------------------------------------------------------------
# Writing


class StreamWriter:
    """safetensors files laid out in advance and filled one tensor at a time.

    Each file's tensors are placed as safetensors places them (by element
    size, largest first, then by name, so every tensor stays aligned); the
    header goes first, the data to its offsets in whatever order it comes.
    """

    def __init__(self, folder: Path, layout: list[TensorInfo], with_index: bool) -> None:
        self.folder = folder
        self.layout = {t.name: t for t in layout}
        self.with_index = with_index or len({t.file for t in layout}) > 1
        self._where: dict[str, tuple[str, int]] = {}
        self._files = {}
        self._pending = set(self.layout)
        for file in dict.fromkeys(t.file for t in layout):
            self._lay_out(file, [t for t in layout if t.file == file])

    def _lay_out(self, file: str, infos: list[TensorInfo]) -> None:
        infos = sorted(infos, key=lambda t: (-DTYPES[t.dtype][1], t.name))
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for t in infos:
            header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
            offset += t.nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the data starts 8-aligned
        start = 8 + len(text)
        fh = self._files[file] = open(self.folder / file, "wb")
        fh.write(struct.pack("<Q", len(text)) + text)
        fh.truncate(start + offset)
        for t in infos:
            self._where[t.name] = (file, start + header[t.name]["data_offsets"][0])

    def write(self, name: str, tensor: torch.Tensor) -> None:
        info = self.layout[name]
        if tuple(tensor.shape) != info.shape or tensor.dtype != DTYPES[info.dtype][0]:
            raise RuntimeError(f"{name}: planned {info.dtype}{list(info.shape)}, got {tensor.dtype}{list(tensor.shape)}")
        if name not in self._pending:
            raise RuntimeError(f"{name} written twice")
        file, offset = self._where[name]
        fh = self._files[file]
        fh.seek(offset)
        fh.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        self._pending.discard(name)

    def close(self) -> None:
        self.abort()
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} tensors never written, e.g. {sorted(self._pending)[0]}")
        if self.with_index:
            index = {"metadata": {"total_size": sum(t.nbytes for t in self.layout.values())},
                     "weight_map": {n: self.layout[n].file for n in sorted(self.layout)}}
            write_json(self.folder / INDEX, index)

    def abort(self) -> None:
        """Close the files (the folder they are in is removed by whoever made it)."""
        for fh in self._files.values():
            fh.close()


# --------------------------------------------------------------------------
# The output folder


def check_output(out: Path, source: Path, force: bool) -> None:
    """RysError if `out` may not become a new checkpoint folder."""
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise RysError(f"the output {out} is inside the model folder {source}: choose another")
    if out.exists() and not out.is_dir():
        raise RysError(f"the output {out} exists and is not a folder")
    if out.exists() and not force:
        raise RysError(f"the output {out} exists; use --force to replace it")


