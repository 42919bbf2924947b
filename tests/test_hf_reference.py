"""Independent reference: HF transformers vs llama.cpp on GGUFs from rys.checkpoint.hf.mapping.

Tiny seeded Llama and Qwen3.5 models are converted with rys.checkpoint.hf.mapping (with
and without a layer path) and run by llama.cpp; HF runs the same weights
with its decoder-layer list rearranged by the path. Logits must agree.

Tolerances (max |logit difference|, logits of magnitude ~4). HF runs in
float64 on the float32 weights (its gated-delta-rule kernel still works in
float32), so the difference is mostly llama.cpp's float32
rounding (f32 weights and KV cache) amplified by the model:
- llama 2e-5: measured 1.3e-6 to 1.8e-6 here, at most 3.5e-6 over seeds 0-7.
- qwen35 1e-3: measured 1.3e-5 to 7e-5 here, up to 3.8e-4 over seeds 0-7.
  Gated DeltaNet normalizes each head's output with an RMSNorm, and on
  random weights some heads output vectors of RMS 1e-4, which amplifies
  rounding about 1e3: multiplying every weight by (1 + 6e-8 * noise) moves
  HF's own float64 logits by up to 3e-4.
A broken mapping moves the logits by 2 or more (test_broken_mapping_is_caught
asserts more than 100 x the tolerance), and every non-identity path changes
them by more than 1.7 (asserted too), so no comparison here passes vacuously.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="5.2")
pytest.importorskip("llama_cpp")

from support.hf_models import (  # noqa: E402
    hf_config,
    hf_logits,
    hf_tensors,
    llama_cpp_logits,
    tiny_hf_model,
)
from support.tiny_vocab import BOS_ID, add_byte_vocab  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3_5ForCausalLM, Qwen3_5TextConfig  # noqa: E402

from rys.surgery import rewrite  # noqa: E402
from rys.core.arch import RECURRENT_LAYERS  # noqa: E402
from rys.core.errors import RysError  # noqa: E402
from rys.core.gguf_file import write_arrays  # noqa: E402
from rys.core.gguf_tensors import read_arrays  # noqa: E402
from rys.checkpoint.hf.mapping import gguf_to_hf, hf_to_gguf  # noqa: E402
from rys.checkpoint.hf.names import tensor_names  # noqa: E402

TOKENS = [BOS_ID, *b"Hello, worl"]  # 12 ids

TOL = {"llama": 2e-5, "qwen35": 1e-3}

# name -> (architecture, config overrides)
MODELS = {
    "llama": ("llama", {}),
    "qwen35": ("qwen35", {}),
    # 4 DeltaNet value heads over 2 key heads: exercises the head reorder
    "qwen35-v4": ("qwen35", {"linear_num_value_heads": 4}),
}

# Paths on the 8-layer models (qwen35: full attention at 3 and 7).
PATHS = {
    "identity": list(range(8)),
    "4-7": [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7],  # keeps qwen35's period 4
    "3-5": [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7],  # qwen35 needs recurrent_layers
    "1-2,5-6": [0, 1, 2, 1, 2, 3, 4, 5, 6, 5, 6, 7],
    "path:0-2,5-7": [0, 1, 2, 5, 6, 7],  # deletion
}


@pytest.fixture(scope="module")
def models():
    return {name: tiny_hf_model(arch, seed=1234, **kw) for name, (arch, kw) in MODELS.items()}


def _gguf(tmp_path, model_name, models, layer_path=None, edit=None):
    """Write `model_name` as GGUF; edit(meta, tensors_dict) may break it on purpose."""
    arch = MODELS[model_name][0]
    model = models[model_name]
    meta, tensors = hf_to_gguf(arch, hf_config(model), hf_tensors(model), layer_path=layer_path)
    if edit is not None:
        tensors = dict(tensors)
        edit(meta, tensors, hf_tensors(model), tensor_names(arch, hf_config(model), layer_path))
        tensors = list(tensors.items())
    path = tmp_path / f"{model_name}.gguf"
    write_arrays(path, meta, tensors, add_byte_vocab)
    return path


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


@pytest.mark.parametrize("path_name", PATHS)
@pytest.mark.parametrize("model_name", MODELS)
def test_llama_cpp_matches_hf(tmp_path, models, model_name, path_name):
    path = PATHS[path_name]
    model = models[model_name]
    ours = llama_cpp_logits(_gguf(tmp_path, model_name, models, layer_path=path), TOKENS)
    ref = hf_logits(model, TOKENS, path)
    tol = TOL[MODELS[model_name][0]]
    assert ours.shape == ref.shape == (len(TOKENS), model.config.vocab_size)
    assert _max_diff(ours, ref) <= tol
    if path_name != "identity":  # the path changes the function, so this could fail
        assert _max_diff(ref, hf_logits(model, TOKENS)) > 100 * tol


# Mistakes a mapping could make, applied to a correct conversion: each
# replaces GGUF tensors by what a converter missing one step would write.
def _raw(suffixes, fn=lambda x: x):
    """GGUF tensors ending in one of `suffixes` get fn(the HF array)."""

    def edit(meta, tensors, hf, names):
        for hf_name, gguf_name in names:
            if gguf_name.endswith(suffixes):
                tensors[gguf_name] = fn(hf[hf_name])

    return edit


def _no_v_reorder(meta, tensors, hf, names):
    # the DeltaNet tensors with value heads left in HF's grouped order
    transform = {"ssm_a": lambda x: -np.exp(x), "ssm_conv1d.weight": lambda x: x[:, 0, :]}
    heads = ("attn_qkv.weight", "attn_gate.weight", "ssm_beta.weight", "ssm_alpha.weight",
             "ssm_out.weight", "ssm_dt.bias", *transform)
    for hf_name, gguf_name in names:
        if gguf_name.endswith(heads):
            fn = next((f for k, f in transform.items() if gguf_name.endswith(k)), lambda x: x)
            tensors[gguf_name] = fn(hf[hf_name])


def _interval_layers(meta, tensors, hf, names):
    # recurrent_layers from the interval instead of following the path
    key = RECURRENT_LAYERS.format(arch="qwen35")
    meta[key] = [(i + 1) % 4 != 0 for i in range(len(meta[key]))]


# The last field: llama.cpp refuses the file (True) or loads it and computes
# something else (False).
MISTAKES = {
    "llama: q/k rows not permuted for rope": ("llama", "identity", _raw(("attn_q.weight", "attn_k.weight")), False),
    "qwen35: norms without +1": ("qwen35", "identity", _raw(
        ("attn_norm.weight", "post_attention_norm.weight", "attn_q_norm.weight", "attn_k_norm.weight",
         "output_norm.weight")), False),
    "qwen35: +1 on linear_attn.norm": ("qwen35", "identity", _raw(("ssm_norm.weight",), lambda x: x + 1), False),
    "qwen35: ssm_a = A_log": ("qwen35", "identity", _raw(("ssm_a",)), False),
    "qwen35-v4: value heads left grouped": ("qwen35-v4", "identity", _no_v_reorder, False),
    # new layer 7 (source 4, DeltaNet) would be full attention: its tensors are missing
    "qwen35: recurrent_layers not following the path": ("qwen35", "3-5", _interval_layers, True),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_broken_mapping_is_caught(tmp_path, models, mistake):
    """The comparison above is sharp enough to see each of these mistakes."""
    model_name, path_name, edit, refused = MISTAKES[mistake]
    path = PATHS[path_name]
    gguf_path = _gguf(tmp_path, model_name, models, layer_path=path, edit=edit)
    if refused:
        with pytest.raises(RysError, match="llama.cpp could not load .*failed to load model"):
            llama_cpp_logits(gguf_path, TOKENS)
        return
    ours = llama_cpp_logits(gguf_path, TOKENS)
    assert _max_diff(ours, hf_logits(models[model_name], TOKENS, path)) > 100 * TOL[MODELS[model_name][0]]


# Tensors whose round trip does float arithmetic (x + 1 - 1, log(exp(x)));
# every other tensor only moves bytes and must come back bit for bit.
ARITHMETIC = ("norm.weight", "A_log")
ULP_AT_1 = 2.0**-23


def _rebuild(arch: str, cfg: dict):
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager"))
    return Qwen3_5ForCausalLM(Qwen3_5TextConfig(**cfg, attn_implementation="eager"))


@pytest.mark.parametrize("model_name", MODELS)
def test_round_trip_through_a_file(tmp_path, models, model_name):
    """gguf_to_hf(read(write(hf_to_gguf(x)))) == x, and its config rebuilds the same model."""
    arch, model = MODELS[model_name][0], models[model_name]
    original = hf_tensors(model)
    gguf_path = _gguf(tmp_path, model_name, models)
    meta, tensors = read_arrays(gguf_path)
    cfg, back = gguf_to_hf(arch, meta, tensors)

    tied = model.config.tie_word_embeddings
    assert set(back) == set(original) - ({"lm_head.weight"} if tied else set())
    for name, x in back.items():
        assert x.dtype == original[name].dtype and x.shape == original[name].shape, name
        if name.endswith(ARITHMETIC) and "linear_attn.norm" not in name:
            np.testing.assert_allclose(x, original[name], rtol=2 * ULP_AT_1, atol=ULP_AT_1, err_msg=name)
        else:
            assert np.array_equal(x, original[name]), name

    rebuilt = _rebuild(arch, cfg)
    rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=not tied)
    rebuilt.tie_weights()
    assert _max_diff(hf_logits(rebuilt, TOKENS), hf_logits(model, TOKENS)) <= TOL[arch]


@pytest.mark.parametrize("model_name,path_name", [("llama", "1-2,5-6"), ("qwen35-v4", "3-5")])
def test_round_trip_along_a_path(tmp_path, models, model_name, path_name):
    """GGUF built along a path, read back as HF: the path built directly."""
    arch, model, path = MODELS[model_name][0], models[model_name], PATHS[path_name]
    meta, tensors = read_arrays(_gguf(tmp_path, model_name, models, layer_path=path))
    cfg, back = gguf_to_hf(arch, meta, tensors)
    assert cfg["num_hidden_layers"] == len(path)
    if arch == "qwen35":
        assert cfg["layer_types"] == [model.config.layer_types[i] for i in path]
    rebuilt = _rebuild(arch, cfg)
    rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=False)
    rebuilt.tie_weights()
    assert _max_diff(hf_logits(rebuilt, TOKENS), hf_logits(model, TOKENS, path)) <= TOL[arch]


@pytest.mark.parametrize("spec", [s for s in PATHS if s != "identity"])
@pytest.mark.parametrize("model_name", MODELS)
def test_rys_build_matches_hf(tmp_path, models, model_name, spec):
    """`rys build` on the identity GGUF gives llama.cpp the logits HF computes along the path."""
    src = _gguf(tmp_path, model_name, models)
    out = rewrite.build(src, spec, tmp_path / "built.gguf", layout="auto").out
    ours = llama_cpp_logits(out, TOKENS)
    ref = hf_logits(models[model_name], TOKENS, PATHS[spec])
    assert _max_diff(ours, ref) <= TOL[MODELS[model_name][0]]
