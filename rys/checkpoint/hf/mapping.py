"""Convert whole models between HF and GGUF: state dicts and config <-> metadata.

hf_to_gguf gives the GGUF metadata and tensors of an HF checkpoint (numpy
arrays), optionally along a layer path, for gguf_file.write_arrays. Back:
read_hf streams a GGUF file as an HF config and its tensors, one at a time
(each dequantized once, by gguf_tensors), and gguf_to_hf turns small arrays
into a whole state dict. Which tensor is which is in hf_names.py, their
layouts in hf_layout.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import gguf
import numpy as np

from ...core import gguf_tensors
from ...core.arch import FULL_ATTENTION_INTERVAL, RECURRENT_LAYERS, key
from ...core.errors import RysError
from ...core.gguf_file import GGUFFile
from .layout import Dims, dims, need
from .names import (ATTENTION, DEFAULT_INTERVAL, DELTANET, EMBEDDING, HF_LAYER_TYPES, LM_HEAD, attention_interval, check_arch, check_names, check_path, hf_layer_kinds, interval_kinds, plan)

# Qwen3.5 rotary sections (time, height, width) when the config has none;
# llama.cpp requires the key, padded to 4 entries.
_DEFAULT_MROPE_SECTION = [11, 11, 10]

Metadata = dict[str, object]
TensorList = list[tuple[str, np.ndarray]]


def _rope_params(cfg: Mapping) -> dict:
    """rope_parameters (transformers >= 5), falling back to the old flat keys."""
    params = dict(cfg.get("rope_parameters") or {})
    for name in ("rope_theta", "partial_rotary_factor"):
        if name not in params and cfg.get(name) is not None:
            params[name] = cfg[name]
    if cfg.get("rope_scaling"):
        params.setdefault("rope_type", cfg["rope_scaling"].get("rope_type", cfg["rope_scaling"].get("type")))
    rope_type = params.get("rope_type") or "default"
    if rope_type != "default":
        raise RysError(f"rope_type '{rope_type}' is not supported yet (only 'default')")
    return params


# --------------------------------------------------------------------------
# HF -> GGUF


def hf_to_gguf(
    arch: str,
    hf_config: Mapping,
    tensors: Mapping[str, np.ndarray],
    layer_path: Sequence[int] | None = None,
) -> tuple[Metadata, TensorList]:
    """Convert an HF state dict (numpy arrays) to GGUF metadata and tensors.

    GGUF layer k is HF layer layer_path[k] (default: the identity path);
    every per-layer key follows the path. The metadata holds the model keys
    only: the caller adds a tokenizer (see gguf_file.write_arrays).
    """
    check_arch(arch)
    d = dims(arch, hf_config)
    _rope_params(hf_config)  # refuse an unsupported rope before anything else
    kinds = hf_layer_kinds(arch, hf_config)
    path = check_path(layer_path, d.n_layer)
    tied = bool(hf_config.get("tie_word_embeddings", False))  # no lm_head: output = embedding
    expected = {r.hf_name(src) for r, src, _ in plan(arch, kinds, tied, range(d.n_layer))}
    check_names(set(tensors), expected, "HF checkpoint")

    out = [
        (rule.gguf_name(new), rule.layout.to_gguf(np.asarray(tensors[rule.hf_name(src)]), d))
        for rule, src, new in plan(arch, kinds, tied, path)
    ]
    n_vocab = np.shape(tensors[EMBEDDING.hf_name()])[0]
    meta = _metadata(arch, hf_config, d, [kinds[i] for i in path], n_vocab)
    return meta, out


def _metadata(arch: str, cfg: Mapping, d: Dims, kinds: Sequence[str], n_vocab: int) -> Metadata:
    """GGUF keys for the model (kinds: one per GGUF layer, along the path)."""
    K = gguf.Keys
    rope = _rope_params(cfg)
    meta: Metadata = {
        K.General.ARCHITECTURE: arch,
        K.General.FILE_TYPE: int(gguf.LlamaFileType.ALL_F32),
        K.LLM.VOCAB_SIZE: n_vocab,
        K.LLM.CONTEXT_LENGTH: int(cfg.get("max_position_embeddings") or 4096),
        K.LLM.EMBEDDING_LENGTH: d.n_embd,
        K.LLM.FEED_FORWARD_LENGTH: need(cfg, "intermediate_size"),
        K.LLM.BLOCK_COUNT: len(kinds),
        K.Attention.HEAD_COUNT: d.n_head,
        K.Attention.HEAD_COUNT_KV: d.n_head_kv,
        K.Attention.KEY_LENGTH: d.head_dim,
        K.Attention.VALUE_LENGTH: d.head_dim,
        K.Attention.LAYERNORM_RMS_EPS: float(cfg.get("rms_norm_eps") or 1e-6),
        K.Rope.FREQ_BASE: float(rope.get("rope_theta", 10000.0)),
        K.Rope.DIMENSION_COUNT: int(d.head_dim * rope.get("partial_rotary_factor", 1.0)),
    }
    if arch == "qwen35":
        sections = list(rope.get("mrope_section") or _DEFAULT_MROPE_SECTION)
        meta |= {
            K.Rope.DIMENSION_SECTIONS: (sections + [0, 0, 0, 0])[:4],
            K.SSM.CONV_KERNEL: need(cfg, "linear_conv_kernel_dim"),
            K.SSM.STATE_SIZE: d.lin_head_dim,
            K.SSM.GROUP_COUNT: d.lin_k_heads,
            K.SSM.TIME_STEP_RANK: d.lin_v_heads,
            K.SSM.INNER_SIZE: d.lin_head_dim * d.lin_v_heads,
            RECURRENT_LAYERS: [k == DELTANET for k in kinds],
        }
        # The scalar only when it types every layer as the array does, so the
        # two keys never disagree (llama.cpp reads the array first).
        interval = attention_interval(kinds)
        if interval is not None:
            meta[FULL_ATTENTION_INTERVAL] = interval
    return {key(k, arch): v for k, v in meta.items()}


# --------------------------------------------------------------------------
# GGUF -> HF


@dataclass
class HFTensors:
    """An HF model made from a GGUF: its config, then its tensors one at a time."""

    config: dict
    sizes: dict[str, int]  # values per HF tensor, in the order `arrays` yields them: globals, then layer by layer
    arrays: Iterator[tuple[str, np.ndarray]]  # (HF name, array), each read when it is reached


def read_hf(gf: GGUFFile) -> HFTensors:
    """A GGUF file as an HF config and float32 tensors, each read and
    dequantized once, when the iteration reaches it: memory is about one
    tensor (its float32 copy and one transformed copy), whatever the size of
    the file. Every check runs before the first tensor is read."""
    tensors = gguf_tensors.Dequantized(gf)
    return stream_gguf_to_hf(gf.arch, gguf_tensors.metadata(gf), tensors, tensors.shape)


def stream_gguf_to_hf(
    arch: str, metadata: Mapping[str, object], tensors: Mapping[str, np.ndarray],
    shape: Callable[[str], tuple[int, ...]],
) -> HFTensors:
    """GGUF metadata and tensors (looked up only when their turn comes;
    `shape` gives a tensor's numpy shape without reading it) as HF's.

    GGUF layer k becomes HF layer k. The config dict holds the keys that
    LlamaConfig / Qwen3_5TextConfig need to rebuild the same model.
    """
    check_arch(arch)
    cfg = _config(arch, metadata, tensors, shape)
    d = dims(arch, cfg)
    kinds = hf_layer_kinds(arch, cfg)
    rules = [(r, bid) for r, bid, _ in plan(arch, kinds, cfg["tie_word_embeddings"], range(d.n_layer))]
    check_names(set(tensors), {r.gguf_name(bid) for r, bid in rules}, "GGUF file")
    arrays = ((r.hf_name(bid), r.layout.to_hf(np.asarray(tensors[r.gguf_name(bid)]), d)) for r, bid in rules)
    return HFTensors(cfg, {r.hf_name(bid): int(np.prod(shape(r.gguf_name(bid)))) for r, bid in rules}, arrays)


def gguf_to_hf(
    arch: str, metadata: Mapping[str, object], tensors: Mapping[str, np.ndarray]
) -> tuple[dict, dict[str, np.ndarray]]:
    """GGUF metadata and f32/f16 arrays as an HF config and a whole state dict
    (small models; a file goes through read_hf, one tensor at a time)."""
    for name, x in tensors.items():
        if np.asarray(x).dtype not in (np.float32, np.float16):
            raise RysError(f"tensor '{name}' is {np.asarray(x).dtype}, not f32/f16: dequantize it first")
    hf = stream_gguf_to_hf(arch, metadata, tensors, lambda name: np.shape(tensors[name]))
    return hf.config, dict(hf.arrays)


def _config(
    arch: str, meta: Mapping[str, object], tensors: Mapping, shape: Callable[[str], tuple[int, ...]]
) -> dict:
    """The HF config of a GGUF (tensors: only their names are looked at; shape gives the embedding's)."""

    def get(template: str, default=None):
        value = meta.get(key(template, arch), default)
        if value is None:
            raise RysError(f"the GGUF file has no '{key(template, arch)}'")
        return value

    K = gguf.Keys
    n_embd, n_head = int(get(K.LLM.EMBEDDING_LENGTH)), int(get(K.Attention.HEAD_COUNT))
    n_layer = int(get(K.LLM.BLOCK_COUNT))
    head_dim = int(get(K.Attention.KEY_LENGTH, n_embd // n_head))
    if EMBEDDING.gguf_name() not in tensors:
        raise RysError(f"GGUF file: tensor '{EMBEDDING.gguf_name()}' is missing")
    scaling = meta.get(key(K.Rope.SCALING_TYPE, arch), "none")
    if scaling != "none":
        raise RysError(f"rope scaling '{scaling}' is not supported yet")
    if arch == "llama" and int(get(K.Rope.DIMENSION_COUNT, head_dim)) != head_dim:
        raise RysError(f"llama: rope on {get(K.Rope.DIMENSION_COUNT)} of {head_dim} dimensions per head: "
                       f"HF's LlamaConfig rotates them all")
    rope = {"rope_type": "default", "rope_theta": float(get(K.Rope.FREQ_BASE, 10000.0))}
    cfg = {
        "vocab_size": int(shape(EMBEDDING.gguf_name())[0]),
        "hidden_size": n_embd,
        "intermediate_size": int(get(K.LLM.FEED_FORWARD_LENGTH)),
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": int(get(K.Attention.HEAD_COUNT_KV, n_head)),
        "head_dim": head_dim,
        "rms_norm_eps": float(get(K.Attention.LAYERNORM_RMS_EPS)),
        "max_position_embeddings": int(get(K.LLM.CONTEXT_LENGTH, 4096)),
        "tie_word_embeddings": LM_HEAD.gguf_name() not in tensors,
        "rope_parameters": rope,
    }
    for name, token in (("bos_token_id", K.Tokenizer.BOS_ID), ("eos_token_id", K.Tokenizer.EOS_ID),
                        ("pad_token_id", K.Tokenizer.PAD_ID)):
        if token in meta:
            cfg[name] = int(meta[token])
    if arch == "qwen35":
        rope["partial_rotary_factor"] = int(get(K.Rope.DIMENSION_COUNT)) / head_dim
        rope["mrope_section"] = [int(s) for s in get(K.Rope.DIMENSION_SECTIONS)][:3]
        rope["mrope_interleaved"] = True
        cfg |= {
            "linear_conv_kernel_dim": int(get(K.SSM.CONV_KERNEL)),
            "linear_key_head_dim": int(get(K.SSM.STATE_SIZE)),
            "linear_value_head_dim": int(get(K.SSM.STATE_SIZE)),
            "linear_num_key_heads": int(get(K.SSM.GROUP_COUNT)),
            "linear_num_value_heads": int(get(K.SSM.TIME_STEP_RANK)),
            "layer_types": [HF_LAYER_TYPES[k] for k in _gguf_layer_kinds(arch, meta, n_layer)],
        }
    return cfg


def _gguf_layer_kinds(arch: str, meta: Mapping[str, object], n_layer: int) -> list[str]:
    """Layer kinds as llama.cpp reads them: the array first, else the interval."""
    recurrent = meta.get(key(RECURRENT_LAYERS, arch))
    if recurrent is not None:
        if len(recurrent) != n_layer:
            raise RysError(f"{key(RECURRENT_LAYERS, arch)} has {len(recurrent)} entries for {n_layer} layers")
        return [DELTANET if r else ATTENTION for r in recurrent]
    interval = int(meta.get(key(FULL_ATTENTION_INTERVAL, arch), DEFAULT_INTERVAL))
    return interval_kinds(n_layer, interval)
