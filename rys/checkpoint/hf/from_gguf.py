"""A GGUF written as a Hugging Face checkpoint folder (and folders checked as input).

A GGUF becomes a standard checkpoint (config.json, safetensors in f32 or
bf16, tokenizer and generation files) that `AutoModelForCausalLM` and
`AutoTokenizer` load. Two loaders:

- rys's own mapping (hf_convert.read_hf; the layouts of hf_layout.py,
  proven against llama.cpp in tests/test_hf_reference.py) for the
  architectures hf_names maps, llama and qwen35. It streams: each tensor is
  read and dequantized once (gguf_file.read_tensor), transformed, cast, and
  written at its place in safetensors files laid out in advance
  (hf_checkpoint.StreamWriter; shapes from the model class built on the
  meta device; files of at most SHARD_BYTES, with
  model.safetensors.index.json when there are several). Memory: the tensor
  in flight, up to 10 bytes per value of the largest tensor (its float32
  copy, a transformed copy, the cast) plus gguf-py's temporaries (a few
  times gguf_file.DEQUANT_STEP), and the tokenizer; not the model.
  tests/test_export_memory.py measures it: a 309 MB Q8_0/F16 file of 200M
  parameters (largest tensor 4M) takes 55-64 MB above the interpreter's
  own, in bf16 or f32 (the whole state dict before: 800-1140 MB).
- transformers' GGUF loader (`from_pretrained(dir, gguf_file=...)`) for
  the other architectures it knows (qwen2, qwen3, gemma3, ...) and for
  files of rys's architectures that its mapping does not fit (a Llama 3
  GGUF's rope_freqs, for one). It dequantizes every tensor into one state
  dict: memory is the whole model in the target dtype, and more. The model
  it returns refuses `save_pretrained` (it counts as quantized), so the
  weights move, without a copy, into a model built afresh from the same config.

torch and transformers (the [torch] extra) are imported only inside the
functions that need them. Folders are written atomically, by
rys.core.files.atomic_folder (a temporary folder renamed over the target).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core import gguf_file
from ...core.errors import RysError
from ...core.files import atomic_folder
from .mapping import HFTensors, read_hf
from .names import ARCHITECTURES

DTYPES = ("f32", "bf16")  # what a GGUF is dequantized to
SHARD_BYTES = 2 << 30  # the largest safetensors file rys's mapping writes (memory does not depend on it)
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
    """Which loader converts a GGUF of `arch`: "rys" or "transformers"; RysError for neither.

    A file of rys's architectures that its mapping does not fit goes to
    transformers after all, where that knows the architecture (_rys_mapping).
    """
    if arch in ARCHITECTURES:
        return "rys"
    if _transformers_knows(arch):
        return "transformers"
    raise RysError(f"cannot convert architecture '{arch}' to a Hugging Face checkpoint: transformers' GGUF "
                   f"loader does not support it and rys maps only {', '.join(ARCHITECTURES)}")


def _transformers_knows(arch: str) -> bool:
    from transformers.integrations.gguf import is_gguf_arch_supported
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    plain = {a.replace("_", "") for a in GGUF_SUPPORTED_ARCHITECTURES}
    return is_gguf_arch_supported(arch) or arch.replace("_", "").replace("-", "") in plain


def gguf_to_folder(path: Path, out: Path, dtype: str = "bf16", force: bool = False,
                   shard_bytes: int = SHARD_BYTES) -> Written:
    """Write the GGUF at `path` as an HF checkpoint folder `out`, dequantized to `dtype`."""
    if dtype not in DTYPES:
        raise RysError(f"a GGUF converts to an HF checkpoint in {' or '.join(DTYPES)}, not '{dtype}'")
    gf = gguf_file.read(path)
    need_torch("converting a GGUF to a checkpoint")
    hf = _rys_mapping(gf)
    n_params = sum(int(np.prod(t.shape)) for t in gf.tensors)
    check_folder_output(out, force, need_bytes=n_params * (4 if dtype == "f32" else 2))
    import torch

    torch_dtype = torch.float32 if dtype == "f32" else torch.bfloat16
    with atomic_folder(out) as tmp:
        if hf is not None:
            _write_with_rys_mapping(gf.arch, hf, tmp, torch_dtype, shard_bytes)
        else:
            model = _with_transformers(path, torch_dtype)
            model.save_pretrained(tmp)
            del model
        _tokenizer(path).save_pretrained(tmp)
    n_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return Written(out, gf.arch, "transformers" if hf is None else "rys", dtype, n_params, n_bytes)


def _rys_mapping(gf: gguf_file.GGUFFile) -> HFTensors | None:
    """The file through rys's mapping (checked, no tensor read yet), or None
    where transformers' loader converts it instead."""
    if loader_for(gf.arch) == "transformers":
        return None
    try:
        return read_hf(gf)
    except RysError:
        if _transformers_knows(gf.arch):
            return None
        raise


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


def _write_with_rys_mapping(arch: str, hf: HFTensors, folder: Path, torch_dtype, shard_bytes: int) -> None:
    """config.json, generation_config.json and the safetensors files of rys's
    mapping, tensor by tensor (memory: the tensor in flight)."""
    import torch
    import transformers

    from .folder import StreamWriter

    config_name, model_name = HF_CLASSES[arch]
    config = getattr(transformers, config_name)(**hf.config, architectures=[model_name], dtype=torch_dtype)
    with torch.device("meta"):  # shapes without memory
        model = getattr(transformers, model_name)(config)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    wrong = sorted(n for n in hf.sizes if n in shapes and hf.sizes[n] != int(np.prod(shapes[n])))
    missing, unexpected = sorted(set(shapes) - set(hf.sizes)), sorted(set(hf.sizes) - set(shapes))
    if missing or unexpected or wrong:
        raise RysError(f"rys's {arch} mapping does not fit {model_name}: missing {missing}, unexpected "
                       f"{unexpected}, sizes differ in {wrong}")
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    writer = StreamWriter(folder, _layout(hf, shapes, torch_dtype, shard_bytes), with_index=False)
    try:  # the generator reads each tensor when the loop reaches it
        for name, array in hf.arrays:
            writer.write(name, torch.from_numpy(np.require(array, np.float32, ["C", "W"])).to(torch_dtype))
            del array  # before the next tensor is read
    except BaseException:
        writer.abort()  # the folder is removed by atomic_folder
        raise
    writer.close()


def _layout(hf: HFTensors, shapes: dict[str, tuple[int, ...]], torch_dtype, shard_bytes: int) -> list:
    """Where each tensor goes: files of at most shard_bytes (a larger tensor
    alone), in the order the tensors come; one file is model.safetensors."""
    import torch

    from .folder import SINGLE, TensorInfo

    dtype, size = ("F32", 4) if torch_dtype == torch.float32 else ("BF16", 2)
    groups, used = [[]], 0
    for name, n in hf.sizes.items():
        if groups[-1] and used + n * size > shard_bytes:
            groups, used = groups + [[]], 0
        groups[-1].append(name)
        used += n * size
    files = [SINGLE] if len(groups) == 1 else [f"model-{i:05d}-of-{len(groups):05d}.safetensors"
                                               for i in range(1, len(groups) + 1)]
    return [TensorInfo(name, dtype, shapes[name], file) for file, group in zip(files, groups) for name in group]
