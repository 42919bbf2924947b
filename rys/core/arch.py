"""Per-architecture facts: how llama.cpp decides each layer's kind.

llama.cpp types a layer either from a scalar (a period, an interval, a count
of leading layers) or from a per-layer array. A rewrite must leave every
layer typed as its source layer was. Each rule below says how llama.cpp
(the version inside llama-cpp-python 0.3.36) computes the per-layer flag, so
the same function can type the source file and the rewritten one and the two
can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gguf

# Key templates ("{arch}" stands for the architecture; see key()). Per-layer
# "is this layer recurrent" flags: current llama.cpp reads this array before
# the interval; gguf-py 0.19.0's Keys table lacks it, so it is spelled here, once.
RECURRENT_LAYERS = getattr(gguf.Keys.Attention, "RECURRENT_LAYERS", "{arch}.attention.recurrent_layers")
FULL_ATTENTION_INTERVAL = gguf.Keys.LLM.FULL_ATTENTION_INTERVAL
SLIDING_WINDOW = gguf.Keys.Attention.SLIDING_WINDOW
SLIDING_WINDOW_PATTERN = gguf.Keys.Attention.SLIDING_WINDOW_PATTERN
LEADING_DENSE = gguf.Keys.LLM.LEADING_DENSE_BLOCK_COUNT
HEAD_COUNT_KV = gguf.Keys.Attention.HEAD_COUNT_KV
FEED_FORWARD_LENGTH = gguf.Keys.LLM.FEED_FORWARD_LENGTH
NEXTN_PREDICT_LAYERS = gguf.Keys.LLM.NEXTN_PREDICT_LAYERS

# `{arch}.*` arrays that never have one entry per layer, even when their
# length happens to equal the layer count.
NOT_PER_LAYER = {gguf.Keys.Rope.DIMENSION_SECTIONS, "{arch}.rope.scaling.factors"}


@dataclass(frozen=True)
class KindRule:
    """How llama.cpp sets one boolean per layer.

    flag(i, period, n_trunk) gives the flag of trunk layer i from the scalar;
    extra (MTP / nextn) layers always get False. `kinds` names the layer when
    the flag is (True, False).
    """

    kinds: tuple[str, str]
    scalar_key: str | None  # key template of the scalar (period, interval or count)
    default: int  # the scalar when the file has no such key
    flag: Callable[[int, int, int], bool]
    array_key: str | None  # key template of the per-layer bool array llama.cpp reads first
    applies: Callable[[Callable[[str], object]], bool] = lambda get: True
    what: str = "period"  # how an error message names the scalar

    def is_periodic(self) -> bool:
        return self.what in ("period", "interval")


def _interval(i: int, p: int, n: int) -> bool:
    # qwen35 / qwen3next: full attention iff (i + 1) % interval == 0, else recurrent.
    return (i + 1) % p != 0


def _swa(i: int, p: int, n: int) -> bool:
    # llama_hparams::set_swa_pattern, dense_first=false: the last layer of each period is global.
    return p == 0 or i % p < p - 1


def _swa_dense_first(i: int, p: int, n: int) -> bool:
    # dense_first=true: the first layer of each period is global.
    return p == 0 or i % p != 0


def _leading(i: int, p: int, n: int) -> bool:
    # deepseek-style: the first `p` layers have a dense FFN, the rest are MoE.
    return i < p


def _has_sliding_window(get: Callable[[str], object]) -> bool:
    value = get(SLIDING_WINDOW)
    return value is not None and int(value) > 0


def _interval_rule(default: int) -> KindRule:
    return KindRule(("deltanet", "attention"), FULL_ATTENTION_INTERVAL, default, _interval,
                    RECURRENT_LAYERS, what="interval")


def _swa_rule(default: int, dense_first: bool = False, conditional: bool = False) -> KindRule:
    return KindRule(("swa", "global"), SLIDING_WINDOW_PATTERN, default,
                    _swa_dense_first if dense_first else _swa, SLIDING_WINDOW_PATTERN,
                    applies=_has_sliding_window if conditional else (lambda get: True))


_LEADING = KindRule(("dense", "moe"), LEADING_DENSE, 0, _leading, None, what="leading dense layer count")

# Architecture -> rules (from src/models/*.cpp of llama.cpp).
RULES: dict[str, tuple[KindRule, ...]] = {
    "qwen35": (_interval_rule(4),),
    "qwen35moe": (_interval_rule(4),),
    "qwen3next": (_interval_rule(4),),
    "minimax-01": (_interval_rule(8),),
    "gemma2": (_swa_rule(2),),
    "gemma3": (_swa_rule(6, conditional=True),),
    "gemma-embedding": (_swa_rule(6),),
    "cohere2": (_swa_rule(4),),
    "olmo2": (_swa_rule(4, conditional=True),),
    "openai-moe": (_swa_rule(2),),
    "gpt-oss": (_swa_rule(2),),
    "mellum": (_swa_rule(4, conditional=True),),
    "muse-glimmer": (_swa_rule(4),),
    "plamo3": (_swa_rule(8, conditional=True),),
    "smallthinker": (_swa_rule(4, dense_first=True, conditional=True),),
    "exaone-moe": (_swa_rule(4), _LEADING),
    "afmoe": (_swa_rule(4, conditional=True), _LEADING),
    "cohere2moe": (_swa_rule(4, dense_first=True), _LEADING),
    "deepseek": (_LEADING,),
    "deepseek2": (_LEADING,),
    "dots1": (_LEADING,),
    "bailingmoe": (_LEADING,),
    "bailingmoe2": (_LEADING,),
    "glm4moe": (_LEADING,),
}

# Architectures whose layers are all alike as far as llama.cpp is concerned
# (no per-layer kinds), checked against their tensors anyway.
UNIFORM = {
    "llama", "qwen2", "qwen3", "qwen3moe", "qwen2moe", "mistral3", "phi3", "granite", "granitemoe",
    "smollm3", "olmo", "olmoe", "starcoder2", "stablelm", "internlm2", "deci", "exaone", "gemma",
    "phi2", "gpt2", "gptneox", "falcon", "mpt", "baichuan", "command-r", "orion", "minicpm", "ernie4_5",
    "hunyuan-dense", "seed_oss", "apertus", "arcee", "glm4",
}

# Hybrids whose kinds come from per-layer arrays (re-indexed along the path,
# so kinds follow their layers without any rule).
ARRAY_KINDS = {"jamba", "granitehybrid", "lfm2", "lfm2moe", "plamo2", "nemotron_h", "nemotron_h_moe", "falcon-h1"}

# Keys whose presence means "this unknown architecture has scalar-typed layers".
PERIOD_KEYS = (FULL_ATTENTION_INTERVAL, SLIDING_WINDOW_PATTERN, LEADING_DENSE,
               gguf.Keys.LLM.INTERLEAVE_MOE_LAYER_STEP, "{arch}.no_rope_layer_step",
               "{arch}.attention.chunked_window_pattern")


def key(template: str, arch: str) -> str:
    return template.format(arch=arch)


def rules_for(arch: str) -> tuple[KindRule, ...]:
    return RULES.get(arch, ())


def array_kind(arch: str, i: int, get_at: Callable[[str, int], object]) -> str:
    """Kind of layer i for hybrids typed by per-layer arrays."""
    hkv = get_at(HEAD_COUNT_KV, i)
    if arch.startswith("nemotron_h"):
        ff = get_at(FEED_FORWARD_LENGTH, i)
        if ff:
            return "mlp"
        return "attention" if hkv else "recurrent"
    return "attention" if hkv else "recurrent"
