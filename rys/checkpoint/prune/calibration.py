"""Calibration: a text file as tokens, and the model run one layer at a time on them.

The model never sits in memory whole: the token embedding is read once to
make the hidden states [n_tokens, n_embd] (the cache), then each decoder
layer's tensors are read, the layer is built with transformers' own class
from the config and run over the cache (which it updates), and hooks record
what importance needs of the inputs of four linears per layer (prune_rules.
RECORDED). The arguments every layer takes besides the hidden states
(rotary embeddings, masks, position ids) come from the model's own forward,
run once on a skeleton whose layers only record them.

Sequences are cut from one token stream, each run alone (batch 1), so no
position is padding and every position counts.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ...core.errors import RysError
from ..hf.folder import Checkpoint
from ..hf.names import ATTENTION
from .rules import ACTIVATION, HEADS, MLP, MLP_OUT, RECORDED, V_HEADS, Arch, Geometry, layer_kinds

SEQ_LEN = 512  # tokens per calibration sequence
EMBEDDING = "model.embed_tokens.weight"


@dataclass(frozen=True)
class Calibration:
    file: Path
    sha256: str
    tokens: torch.Tensor  # [n_tokens] token ids

    def provenance(self) -> dict:
        return {"file": str(self.file), "sha256": self.sha256, "tokens": int(self.tokens.numel())}


def load_calibration(model_dir: Path, file: Path, n_tokens: int) -> Calibration:
    """The first n_tokens tokens of a plain-text file, by the checkpoint's own tokenizer."""
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        raise RysError(f"calibration file {file}: no such file") from None
    except OSError as e:
        raise RysError(f"cannot read calibration file {file}: {e.strerror}") from None
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise RysError(f"calibration file {file} holds no text")
    tokenizer = _tokenizer(model_dir)
    chars = 8 * n_tokens  # a prefix long enough for n_tokens, grown until it is
    while True:
        ids = tokenizer(text[:chars], add_special_tokens=False)["input_ids"]
        if len(ids) > n_tokens or chars >= len(text):
            break
        chars *= 2
    return Calibration(Path(file), hashlib.sha256(data).hexdigest(), torch.tensor(ids[:n_tokens], dtype=torch.long))


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError, TypeError) as e:
        raise RysError(f"cannot load the tokenizer of {model_dir} ({str(e).splitlines()[0]})") from None


def default_device() -> torch.device:
    """A GPU when torch sees one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# --------------------------------------------------------------------------
# Recording


class Recorder:
    """Sums over tokens of what importance needs, from forward pre-hooks.

    For each recorded input x [tokens, features]: sumsq [features] (the
    squared L2 norm over tokens of every feature: wanda's ||X||2), and for
    the two inputs activation measures, l2 [units], the sum over tokens of
    each unit slice's L2 norm (width prune_rules.ACTIVATION).
    """

    def __init__(self, layer: nn.Module, kind: str, geo: Geometry) -> None:
        self.sumsq: dict[str, torch.Tensor] = {}
        self.l2: dict[str, torch.Tensor] = {}
        self.tokens = 0
        measured = (HEADS if kind == ATTENTION else V_HEADS, MLP)
        widths = {stat: getattr(geo, w) for unit, (stat, w) in ACTIVATION.items() if unit in measured}
        self._hooks = [layer.get_submodule(path).register_forward_pre_hook(self._hook(stat, widths.get(stat)))
                       for stat, path in RECORDED[kind].items()]

    def _hook(self, stat: str, width: int | None):
        def hook(module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1])  # [tokens, features]
            # sums kept in float64 on the CPU (small; MPS has no float64)
            self.sumsq[stat] = self.sumsq.get(stat, 0) + x.square().sum(0).to("cpu", torch.float64)
            if width:
                norms = torch.linalg.vector_norm(x.reshape(x.shape[0], -1, width), dim=-1).sum(0)
                self.l2[stat] = self.l2.get(stat, 0) + norms.to("cpu", torch.float64)
            if stat == MLP_OUT:
                self.tokens += x.shape[0]
        return hook

    def close(self) -> "LayerStats":
        for h in self._hooks:
            h.remove()
        return LayerStats(self.sumsq, self.l2, self.tokens)


@dataclass(frozen=True)
class LayerStats:
    sumsq: dict[str, torch.Tensor]  # recorded input -> [features], sum over tokens of x^2
    l2: dict[str, torch.Tensor]  # recorded input -> [units], sum over tokens of each unit's L2 norm
    tokens: int

    def input_norm(self, stat: str) -> torch.Tensor:
        """||X_j||2 over the calibration tokens, per input feature j (wanda)."""
        return self.sumsq[stat].sqrt()

    def mean_l2(self, stat: str) -> torch.Tensor:
        """The mean over tokens of each unit's L2 norm (activation)."""
        return self.l2[stat] / max(self.tokens, 1)


# --------------------------------------------------------------------------
# Running


def hf_config(ckpt: Checkpoint):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(ckpt.folder))
    config._attn_implementation = "sdpa"
    config.use_cache = False
    return config


class _Catcher(nn.Module):
    """Stands in for decoder layer `index`: records what the model passes it."""

    def __init__(self, index: int, store: dict) -> None:
        super().__init__()
        self.index, self.store = index, store

    def forward(self, hidden_states, *args, **kwargs):
        self.store[self.index] = (args, kwargs)
        return hidden_states


def _skeleton(config, device: torch.device):
    """The base model without weights (meta), its layer classes, and a function
    giving every layer's extra arguments for a sequence length."""
    from transformers import AutoModel

    with torch.device("meta"):
        base = AutoModel.from_config(config)
    classes = [type(layer) for layer in base.layers]
    base.rotary_emb = type(base.rotary_emb)(config=config).to(device)  # real buffers (inv_freq)
    store: dict[int, tuple] = {}
    base.layers = nn.ModuleList(_Catcher(i, store) for i in range(len(classes)))
    base.norm = nn.Identity()
    cache: dict[int, dict] = {}

    def layer_args(length: int) -> dict:
        if length not in cache:
            base(inputs_embeds=torch.zeros(1, length, config.hidden_size, device=device), use_cache=False)
            cache[length] = dict(store)
        return cache[length]

    return classes, layer_args


def _build_layer(cls, config, index: int, tensors: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    with torch.device("meta"):
        layer = cls(config, index)
    state = {k: v.to(device=device, dtype=torch.float32) for k, v in tensors.items()}
    try:
        layer.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise RysError(f"layer {index} does not match config.json: {str(e).splitlines()[-1].strip()}") from None
    return layer.eval()


def run_layers(ckpt: Checkpoint, arch: Arch, geo: Geometry, calib: Calibration,
               device: torch.device | None = None) -> Iterator[tuple[int, dict[str, torch.Tensor], LayerStats]]:
    """(layer index, its tensors as stored, its recorded statistics), layer by layer."""
    device = device or default_device()
    _large_blocks_from_mmap()
    config = hf_config(ckpt)
    kinds = layer_kinds(arch, ckpt.config)
    with torch.inference_mode():
        classes, layer_args = _skeleton(config, device)
        embedding = ckpt.read([EMBEDDING])[EMBEDDING]
        hidden = [embedding[seq].to(device=device, dtype=torch.float32)[None] for seq in calib.tokens.split(SEQ_LEN)]
        del embedding
        for i, kind in enumerate(kinds):
            tensors = ckpt.read_layer(i)
            layer = _build_layer(classes[i], config, i, tensors, device)
            recorder = Recorder(layer, kind, geo)
            for j, h in enumerate(hidden):
                args, kwargs = layer_args(h.shape[1])[i]
                hidden[j] = layer(h, *args, **kwargs)
            del layer
            yield i, tensors, recorder.close()
            del tensors  # before the next layer is read


def _large_blocks_from_mmap() -> None:
    """Have glibc serve blocks of 1 MiB and more with mmap, returned to the OS
    when freed: a layer's tensors are freed in another order than they came,
    and in glibc's heap the holes left add up to several layers' worth of RSS
    (measured: 0.70-1.22 of the memory bound without this, 0.61 with it)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc (macOS): its allocator does this itself
        pass
