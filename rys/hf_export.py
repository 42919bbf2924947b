"""A GGUF written as a Hugging Face checkpoint folder (and folders checked as input).

A GGUF becomes a standard checkpoint (config.json, safetensors in f32 or
bf16, tokenizer and generation files) that `AutoModelForCausalLM` and
`AutoTokenizer` load. Two loaders, chosen per architecture:

- transformers' own GGUF loader (`from_pretrained(dir, gguf_file=...)`) for
  the architectures it knows (llama, qwen2, qwen3, gemma3, ...). It
  dequantizes every tensor; the model it returns refuses `save_pretrained`
  (it counts as quantized), so the weights move, without a copy, into a
  model built afresh from the same config. Memory: the model in the target dtype.
- rys's own mapping (hf_convert.gguf_to_hf, the layouts of hf_layout.py,
  proven against llama.cpp in tests/test_hf_gguf.py) for `OWN_MAPPING`:
  Qwen3.5, as issue 10 asks (transformers 5.23 also reads qwen35 GGUFs; on
  a tiny model the two agree to float rounding). Tensors are read at the
  offsets gguf_file.read gives and dequantized by gguf-py's
  `gguf.quants.dequantize` when gguf_to_hf asks for them. Memory: the whole
  model in f32 (gguf_to_hf returns one state dict), then one tensor at a time.

torch and transformers (the [torch] extra) are imported only inside the
functions that need them. Folders are written atomically, by
hf_checkpoint.atomic_folder (a temporary folder renamed over the target).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import gguf
import numpy as np

from . import gguf_file
from .errors import RysError
from .hf_convert import gguf_to_hf

DTYPES = ("f32", "bf16")  # what a GGUF is dequantized to
OWN_MAPPING = ("qwen35",)  # architectures converted with rys's mapping, not transformers'
# The HF classes rys's mapping writes, per GGUF architecture (config class, model class).
HF_CLASSES = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen35": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM")}
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


# --------------------------------------------------------------------------
# Folders


def need_torch(what: str) -> None:
    """RysError unless torch and transformers (the [torch] extra) can be imported."""
    if any(importlib.util.find_spec(name) is None for name in ("torch", "transformers")):
        raise RysError(f"{what} needs torch and transformers: pip install 'rys[torch]'")


def check_checkpoint(folder: Path) -> None:
    """RysError unless `folder` looks like an HF checkpoint: config.json and weight files."""
    if not (folder / "config.json").is_file():
        raise RysError(f"{folder} is not a Hugging Face checkpoint folder (no config.json)")
    if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
        raise RysError(f"{folder} has a config.json but no weights (*.safetensors or pytorch_model*.bin)")


def check_folder_output(out: Path, force: bool, need_bytes: int = 0) -> None:
    """Refuse an existing output folder (without force), a file in its place, a
    missing parent folder, or too little space there."""
    if out.exists() and not out.is_dir():
        raise RysError(f"{out} exists and is not a folder")
    if out.exists() and not force:
        raise RysError(f"{out} exists; use --force to overwrite")
    if not out.parent.is_dir():
        raise RysError(f"output folder {out.parent} does not exist")
    free = shutil.disk_usage(out.parent).free
    if free < need_bytes:
        raise RysError(f"not enough free space in {out.parent}: need {need_bytes / 1e9:.2f} GB, "
                       f"have {free / 1e9:.2f} GB")


# --------------------------------------------------------------------------
# Tensors of a GGUF, dequantized


def dequantize(gf: gguf_file.GGUFFile, t: gguf_file.Tensor) -> np.ndarray:
    """One tensor of `gf` as float32, in numpy axis order (ggml's shape reversed)."""
    try:
        qtype = gguf.GGMLQuantizationType(t.ggml_type)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise RysError(f"tensor '{t.name}' has a type gguf-py does not know ({t.type_name})") from None
    raw = np.memmap(gf.path, np.uint8, mode="r", offset=t.offset, shape=(t.n_bytes,))
    rows = raw.reshape(-1, t.shape[0] // block * type_size)  # one row of blocks per ne[0] values
    try:
        values = gguf.quants.dequantize(rows, qtype)
    except NotImplementedError:
        raise RysError(f"tensor '{t.name}' is {t.type_name}, which gguf-py cannot dequantize") from None
    return np.array(values.reshape(tuple(reversed(t.shape))), dtype=np.float32)


class Dequantized(Mapping):
    """A GGUF's tensors by name, each dequantized when it is looked up (none is kept)."""

    def __init__(self, gf: gguf_file.GGUFFile):
        self._gf = gf
        self._tensors = {t.name: t for t in gf.tensors}

    def __getitem__(self, name: str) -> np.ndarray:
        return dequantize(self._gf, self._tensors[name])

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


# --------------------------------------------------------------------------
# GGUF -> HF folder


@dataclass(frozen=True)
class Written:
    """What gguf_to_folder wrote."""

    out: Path
    arch: str
    loader: str  # "transformers" or "rys"
    dtype: str
    n_params: int
    n_bytes: int


def loader_for(arch: str) -> str:
    """Which loader converts a GGUF of `arch`: "rys" or "transformers"; RysError for neither."""
    if arch in OWN_MAPPING:
        return "rys"
    if _transformers_knows(arch):
        return "transformers"
    raise RysError(f"cannot convert architecture '{arch}' to a Hugging Face checkpoint: transformers' GGUF "
                   f"loader does not support it and rys maps only {', '.join(OWN_MAPPING)}")


def _transformers_knows(arch: str) -> bool:
    from transformers.integrations.gguf import is_gguf_arch_supported
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    plain = {a.replace("_", "") for a in GGUF_SUPPORTED_ARCHITECTURES}
    return is_gguf_arch_supported(arch) or arch.replace("_", "").replace("-", "") in plain


def gguf_to_folder(path: Path, out: Path, dtype: str = "bf16", force: bool = False) -> Written:
    """Write the GGUF at `path` as an HF checkpoint folder `out`, dequantized to `dtype`."""
    if dtype not in DTYPES:
        raise RysError(f"a GGUF converts to an HF checkpoint in {' or '.join(DTYPES)}, not '{dtype}'")
    gf = gguf_file.read(path)
    arch = gf.arch
    loader = loader_for(arch)
    n_params = sum(int(np.prod(t.shape)) for t in gf.tensors)
    check_folder_output(out, force, need_bytes=n_params * (4 if dtype == "f32" else 2))
    need_torch("converting a GGUF to a checkpoint")
    import torch

    from .hf_checkpoint import atomic_folder  # imports torch

    torch_dtype = torch.float32 if dtype == "f32" else torch.bfloat16
    with atomic_folder(out) as tmp:
        if loader == "rys":
            model = _with_rys_mapping(gf, torch_dtype)
        else:
            model = _with_transformers(path, torch_dtype)
        model.save_pretrained(tmp)
        del model
        _tokenizer(path).save_pretrained(tmp)
    n_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return Written(out, arch, loader, dtype, n_params, n_bytes)


def _tokenizer(path: Path):
    """transformers' tokenizer built from the GGUF's vocabulary, merges and special tokens."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (ValueError, KeyError, OSError) as e:
        raise RysError(f"transformers cannot build a tokenizer from {path.name}: {e}") from None


def _with_transformers(path: Path, torch_dtype):
    """The model as transformers' GGUF loader reads it, rebuilt so that it saves."""
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch_dtype,
                                                      quantization_config=GgufConfig(dequantize=True))
    except (ValueError, KeyError, NotImplementedError) as e:
        raise RysError(f"transformers could not load {path.name}: {e}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    with torch.device("meta"):  # no memory: load_state_dict(assign=True) moves the loaded tensors in
        model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.eval()


def _with_rys_mapping(gf: gguf_file.GGUFFile, torch_dtype):
    """The model from rys's GGUF -> HF mapping (hf_convert.gguf_to_hf)."""
    import torch
    import transformers

    arch = gf.arch
    config_name, model_name = HF_CLASSES[arch]
    meta = {k: v.value for k, v in gf.fields.items()}
    cfg, state = gguf_to_hf(arch, meta, Dequantized(gf))
    for name, key in (("bos_token_id", gguf.Keys.Tokenizer.BOS_ID), ("eos_token_id", gguf.Keys.Tokenizer.EOS_ID),
                      ("pad_token_id", gguf.Keys.Tokenizer.PAD_ID)):
        if key in meta:
            cfg[name] = int(meta[key])
    config = getattr(transformers, config_name)(**cfg, architectures=[model_name], dtype=torch_dtype)
    with torch.device("meta"):
        model = getattr(transformers, model_name)(config)
    tensors = {}
    for name in list(state):  # one f32 array at a time becomes a tensor of the target dtype
        array = np.require(state.pop(name), np.float32, ["C", "W"])
        tensors[name] = torch.from_numpy(array).to(torch_dtype)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RysError(f"rys's {arch} mapping does not fit {model_name}: missing {sorted(set(missing) - tied)}, "
                       f"unexpected {sorted(unexpected)}")
    model.tie_weights()
    return model.eval()
