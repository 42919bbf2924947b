"""Tiny HF transformers models and their logits, as a reference for GGUF files.

Helpers for tests (torch, transformers and llama-cpp-python are imported
here, so import this module only where those are available):

- tiny_hf_model(arch, seed, **overrides): a seeded random LlamaForCausalLM
  or Qwen3_5ForCausalLM, float32, eager attention, on CPU.
- hf_logits(model, token_ids, path=None): logits [n_tokens, n_vocab] with
  the decoder layers run in the order `path` (source layer indices).
- write_hf_gguf(model, gguf_path, layer_path=None): the model as an f32 GGUF
  (byte vocabulary from tests/support/tiny_vocab.py), via rys.checkpoint.hf.mapping.
- llama_cpp_logits(gguf_path, token_ids): llama.cpp's logits for the file.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3_5ForCausalLM, Qwen3_5TextConfig

from support.llama_ref import llama_logits
from rys.core.gguf_file import write_arrays
from rys.checkpoint.hf.mapping import hf_to_gguf
from support.tiny_vocab import N_VOCAB, add_byte_vocab

# One thread on each side: the models are tiny, and on a busy 2-core machine
# llama.cpp's two worker threads spent seconds spinning at barriers for a
# 12-token batch (5 s wall per eval, against 10 ms with one thread), while
# torch's idle OpenMP workers spun against them.
torch.set_num_threads(1)
N_THREADS = 1

_COMMON = dict(
    vocab_size=N_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=8,
    num_attention_heads=4,
    num_key_value_heads=2,  # GQA: two query heads per key/value head
    head_dim=16,
    rms_norm_eps=1e-6,
    max_position_embeddings=256,  # llama.cpp rounds n_ctx up to 256
    attn_implementation="eager",
)

CONFIGS = {
    "llama": dict(_COMMON, tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    # Full attention at layers 3 and 7 (interval 4); rotary on half of each
    # 16-dim head: 4 frequency pairs split (2, 1, 1) over time/height/width.
    "qwen35": dict(
        _COMMON,
        tie_word_embeddings=True,
        full_attention_interval=4,
        linear_conv_kernel_dim=4,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        linear_num_key_heads=2,
        linear_num_value_heads=2,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
            "mrope_section": [2, 1, 1],
            "mrope_interleaved": True,
        },
    ),
}


def tiny_hf_model(arch: str, seed: int, **overrides) -> torch.nn.Module:
    """A seeded random tiny model (eval mode, float32, CPU)."""
    kwargs = dict(CONFIGS[arch], **overrides)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kwargs))
    else:
        model = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**kwargs))
    _randomize(model, seed)
    return model.eval().float()


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Fill every parameter from one seeded generator, in name order.

    Scales keep logits of order 1, so an absolute 1e-3 difference means
    something: matrices, embeddings and the conv kernel N(0, 1/fan_in) (with
    tied embeddings the output head is the embedding), norm weights near their neutral value (1 for plain RMSNorm, 0 for
    Qwen3.5's zero-centred x*(1+w) norms) but far enough from it that a
    missing +1 or a swapped head shows.
    """
    gen = torch.Generator().manual_seed(seed)
    zero_centred = isinstance(model, Qwen3_5ForCausalLM)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("A_log"):  # decay rates A in [0.5, 4): log-uniform-ish
                p.copy_(torch.log(torch.rand(p.shape, generator=gen) * 3.5 + 0.5))
            elif name.endswith("dt_bias"):
                p.copy_(0.5 * noise)
            elif name.endswith("norm.weight"):
                neutral = 1.0 if (not zero_centred or "linear_attn.norm" in name) else 0.0
                p.copy_(neutral + 0.2 * noise)
            else:  # linear [out, in], embedding [vocab, n_embd], conv kernel [C, 1, K]
                p.copy_(noise / math.sqrt(p[0].numel()))


def hf_config(model: torch.nn.Module) -> dict:
    return model.config.to_dict()


def hf_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def hf_logits(
    model: torch.nn.Module,
    token_ids: Sequence[int],
    path: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """Logits [n_tokens, n_vocab] with the decoder layers run along `path`.

    Runs on a copy of the model, cast to `dtype`: float64 by default, so the
    reference's own rounding (except in HF's gated-delta-rule kernel, which
    casts to float32 internally) stays well below llama.cpp's float32 error
    and a comparison measures llama.cpp. In the copy the layer list becomes
    [layers[i] for i in path] (a repeated layer is the same module, so the
    same weights), config.num_hidden_layers (where the forward loop stops)
    and Qwen3.5's config.layer_types (which picks each layer's mask) follow
    the path, and caching is off so no per-layer state keyed by layer_idx is
    shared between the copies of a layer.
    """
    ref = copy.deepcopy(model).to(dtype)
    if path is not None:
        layers, cfg = ref.model.layers, ref.config
        ref.model.layers = torch.nn.ModuleList([layers[i] for i in path])
        cfg.num_hidden_layers = len(path)
        if getattr(cfg, "layer_types", None) is not None:
            cfg.layer_types = [cfg.layer_types[i] for i in path]
    with torch.no_grad():
        ids = torch.tensor([list(token_ids)], dtype=torch.long)
        return ref(input_ids=ids, use_cache=False).logits[0].double().numpy()


def write_hf_gguf(model: torch.nn.Module, gguf_path: str | Path, layer_path: Sequence[int] | None = None) -> Path:
    """Convert the model with rys.checkpoint.hf.mapping and write it as an f32 GGUF."""
    arch = "llama" if isinstance(model, LlamaForCausalLM) else "qwen35"
    meta, tensors = hf_to_gguf(arch, hf_config(model), hf_tensors(model), layer_path=layer_path)
    write_arrays(gguf_path, meta, tensors, add_byte_vocab)
    return Path(gguf_path)


def llama_cpp_logits(gguf_path: str | Path, token_ids: Sequence[int]) -> np.ndarray:
    """llama.cpp's logits [n_tokens, n_vocab] for one batch of token_ids (f32 KV cache)."""
    return llama_logits(Path(gguf_path), list(token_ids), n_threads=N_THREADS, kv_f32=True)
