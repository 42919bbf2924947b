"""A GGUF's tensors as float32 numpy arrays, by name.

gguf_file reads the header (Tensor infos) and one tensor's values
(read_tensor, dequantized in bounded steps). On it: Dequantized(gf), a
mapping that reads a tensor when it is looked up and keeps none, so a loop
over a model holds one tensor at a time; and read_arrays, a small file
(tiny models, tests) loaded whole.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

import numpy as np

from .gguf_file import GGUFFile, Tensor, read, read_tensor


class Dequantized(Mapping):
    """A GGUF's tensors by name, each read and dequantized to float32 when it
    is looked up (numpy axis order: ggml's shape reversed); none is kept."""

    def __init__(self, gf: GGUFFile):
        self.file = gf
        self.infos: dict[str, Tensor] = {t.name: t for t in gf.tensors}

    def shape(self, name: str) -> tuple[int, ...]:
        """The numpy shape of tensor `name`, read from the header alone."""
        return tuple(reversed(self.infos[name].shape))

    def __getitem__(self, name: str) -> np.ndarray:
        info = self.infos[name]
        with open(self.file.path, "rb") as fh:
            return read_tensor(fh, info)

    def __contains__(self, name: object) -> bool:  # Mapping's own would read the tensor
        return name in self.infos

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)


def metadata(gf: GGUFFile) -> dict[str, Any]:
    """The file's metadata values by key (without their GGUF types)."""
    return {key: val.value for key, val in gf.fields.items()}


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metadata values and every tensor of a GGUF, dequantized to float32 and
    loaded into memory: for small files only."""
    gf = read(path)
    tensors = Dequantized(gf)
    return metadata(gf), {name: tensors[name] for name in tensors}
