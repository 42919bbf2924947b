"""Tiny random HF checkpoints on disk, built with transformers' own classes.

Import only where torch and transformers are available.

- write_checkpoint(arch, folder, seed, shard_kb=None, **overrides): a seeded
  random model of `arch` (llama, mistral, qwen2, qwen3, qwen35) saved with
  save_pretrained (sharded when shard_kb is given), with a byte-level
  tokenizer (tokenizer.json) beside it.
- load(folder): the checkpoint in float64 with transformers' loading info.
- logits(model, ids): float64 logits [n_tokens, n_vocab].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast,
    Qwen2Config, Qwen2ForCausalLM, Qwen3_5ForCausalLM, Qwen3_5TextConfig, Qwen3Config, Qwen3ForCausalLM,
)

torch.set_num_threads(1)  # tiny models; the machine is shared

N_VOCAB = 300
_COMMON = dict(vocab_size=N_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=256,
               rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

CONFIGS = {
    # SmolLM2-like: tied embeddings; biases everywhere llama allows them, so bias slices are exercised
    "llama": (LlamaConfig, LlamaForCausalLM, dict(_COMMON, tie_word_embeddings=True, attention_bias=True, mlp_bias=True)),
    # 6 heads over 2 KV heads (groups of 3), head_dim 8: heads x head_dim != hidden
    "mistral": (MistralConfig, MistralForCausalLM, dict(_COMMON, num_attention_heads=6, head_dim=8, tie_word_embeddings=False)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(_COMMON, tie_word_embeddings=False)),  # q/k/v biases
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(_COMMON, head_dim=16, tie_word_embeddings=False)),  # q/k norms
    # DeltaNet, attention, DeltaNet, attention; 4 value heads over 2 key heads; gated q_proj
    "qwen35": (Qwen3_5TextConfig, Qwen3_5ForCausalLM, dict(
        _COMMON, num_hidden_layers=4, head_dim=16, tie_word_embeddings=True,
        layer_types=["linear_attention", "full_attention"] * 2, linear_conv_kernel_dim=4,
        linear_key_head_dim=8, linear_value_head_dim=8, linear_num_key_heads=2, linear_num_value_heads=4,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                         "mrope_section": [2, 1, 1], "mrope_interleaved": True})),
}


def build_model(arch: str, seed: int, **overrides) -> torch.nn.Module:
    config_cls, model_cls, kwargs = CONFIGS[arch]
    model = model_cls(config_cls(**dict(kwargs, **overrides)))
    randomize(model, seed)
    return model.eval().float()


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter from one seeded generator, in name order: matrices N(0, 1/fan_in),
    norms near their neutral value (1, or 0 for Qwen3.5's x*(1+w) norms), biases small."""
    gen = torch.Generator().manual_seed(seed)
    zero_centred = isinstance(model, Qwen3_5ForCausalLM)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.rand(p.shape, generator=gen) * 3.5 + 0.5))
            elif name.endswith(("dt_bias", ".bias")):
                p.copy_(0.3 * noise)
            elif name.endswith("norm.weight"):
                neutral = 1.0 if (not zero_centred or "linear_attn.norm" in name) else 0.0
                p.copy_(neutral + 0.2 * noise)
            else:
                p.copy_(noise / math.sqrt(p[0].numel()))


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges: one token per byte (256), ids below N_VOCAB."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def write_checkpoint(arch: str, folder: Path, seed: int = 0, shard_kb: int | None = None,
                     model: torch.nn.Module | None = None, **overrides) -> Path:
    """A tiny checkpoint folder (config.json, safetensors, tokenizer)."""
    model = model if model is not None else build_model(arch, seed, **overrides)
    folder = Path(folder)
    kwargs = {"max_shard_size": f"{shard_kb}KB"} if shard_kb else {}
    model.save_pretrained(folder, **kwargs)
    byte_tokenizer().save_pretrained(folder)
    return folder


def load(folder: Path):
    """(model in float64, eager attention, eval; transformers' loading info)."""
    model, info = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.float64, attn_implementation="eager", output_loading_info=True)
    return model.eval(), info


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids[None]).logits[0]


def token_ids(n: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed))


CALIB_TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
    "Numbers: 3.14159, 2.71828, 1.41421. Where the river bends, the old mill stands; "
    "its wheel turns slowly while the miller counts sacks of flour and sings. "
) * 8
