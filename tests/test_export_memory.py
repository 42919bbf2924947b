"""GGUF -> HF checkpoint streams: the same tensors as before, in memory that
follows the largest tensor, not the file.

The models are llama and qwen35 with wide layers whose matrices alternate
F16 and Q8_0 (norms, the DeltaNet conv kernel and decay rates stay F32),
written here tensor by tensor with gguf-py (metadata from
tests/support/tiny_models.py). The exported tensors must equal, bit for bit,
rys's whole-dict mapping (gguf_to_hf on read_arrays, the export before
streaming) and transformers' own GGUF loader (an independent implementation;
1 ulp apart on qwen35's A_log).

Memory is measured in a child process (its peak resident set, getrusage)
from a baseline taken after a warm-up conversion of a tiny model (so lazy
imports and the tokenizer are not counted). Measured on 309-315 MB files of
200M parameters (12 layers, largest tensor 4M values): 55-64 MB above the
baseline, in bf16 and in f32; before streaming (a whole state dict,
transformers' for llama, rys's for qwen35): 800-1140 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402
from support import tiny_models  # noqa: E402
from support.tiny_models import LAYER_TENSORS, Dims, source_kind  # noqa: E402
from support.tiny_vocab import N_VOCAB  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from rys.core import gguf_file  # noqa: E402
from rys.core.gguf_tensors import read_arrays  # noqa: E402
from rys.checkpoint.hf.mapping import gguf_to_hf  # noqa: E402
from rys.checkpoint.hf.from_gguf import gguf_to_folder  # noqa: E402

pytestmark = pytest.mark.torch

T = gguf.GGMLQuantizationType
SMALL = Dims()  # tiny_models' own: 64 wide, 4 heads of 16, 2 KV heads, 4 DeltaNet value heads over 2 key heads
# 16M parameters per layer, the largest tensor 4M (an FFN matrix)
WIDE = Dims(n_embd=1024, n_ff=4096, n_head=8, n_head_kv=8, head_dim=128, ssm_d_state=128, ssm_n_group=4,
            ssm_dt_rank=8)


def _tensors(arch: str, n_layers: int, d: Dims):
    """(name, ggml shape, how its values are drawn) of every tensor, in file order."""
    yield "token_embd.weight", (d.n_embd, N_VOCAB), "w"
    for k in range(n_layers):
        for name, shape, how in LAYER_TENSORS[arch](d, source_kind(arch, k, n_layers, 4)):
            yield name.format(bid=k), shape, how
    yield "output_norm.weight", (d.n_embd,), "norm"
    yield "output.weight", (d.n_embd, N_VOCAB), "w"


def _type(shape: tuple[int, ...], how: str, i: int) -> T:
    if how != "w" or len(shape) < 2 or shape[0] % 32:
        return T.F32
    return T.Q8_0 if i % 2 else T.F16


def _values(rng: np.random.Generator, shape: tuple[int, ...], how: str, qtype: T) -> np.ndarray:
    x = rng.standard_normal(tuple(reversed(shape)), dtype=np.float32)
    if how == "norm":
        x = 1 + 0.1 * x
    elif how == "neg":  # ssm_a = -exp(A_log)
        x = -np.exp(0.5 * x)
    else:
        x *= 1 / np.sqrt(shape[0])
    return gguf.quants.quantize(x, qtype)


def write_mixed_model(path: Path, arch: str, n_layers: int, d: Dims, seed: int = 0) -> Path:
    """A model of mixed F16/Q8_0/F32 tensors, written one tensor at a time."""
    template = tiny_models.write_model(path.with_suffix(".template"), arch, n_layers=0, dims=d)
    fields = gguf_file.read(template).fields
    template.unlink()
    w = gguf.GGUFWriter(path, arch)
    for key, val in fields.items():
        if key == gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch):
            w.add_block_count(n_layers)
        elif key != gguf.Keys.General.ARCHITECTURE:
            w.add_key_value(key, val.value, val.vtype, val.sub_type)
    plan = [(name, shape, how, _type(shape, how, i))
            for i, (name, shape, how) in enumerate(_tensors(arch, n_layers, d))]
    for name, shape, _, qtype in plan:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        w.add_tensor_info(name, tuple(reversed(shape)), np.dtype(np.float32), int(np.prod(shape)) // block * size,
                          raw_dtype=qtype)
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape, how, qtype in plan:
        w.write_tensor_data(_values(rng, shape, how, qtype))
    w.close()
    return path


def exported(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors |= load_file(str(path))
    return tensors


@pytest.fixture(scope="module", params=["llama", "qwen35"])
def mixed(request, tmp_path_factory) -> tuple[str, Path]:
    arch = request.param
    return arch, write_mixed_model(tmp_path_factory.mktemp(arch) / f"{arch}.gguf", arch, 8, SMALL)


def test_export_equals_the_whole_state_dict(mixed, tmp_path):
    """Streamed, sharded f32 and bf16 folders hold exactly gguf_to_hf's tensors."""
    arch, path = mixed
    assert {t.type_name for t in gguf_file.read(path).tensors} == {"F32", "F16", "Q8_0"}
    _, whole = gguf_to_hf(arch, *read_arrays(path))
    f32, bf16 = tmp_path / "f32", tmp_path / "bf16"
    gguf_to_folder(path, f32, "f32", shard_bytes=200_000)
    index = json.loads((f32 / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 4 and set(index["weight_map"]) == set(whole)
    got = exported(f32)
    assert set(got) == set(whole)
    for name, x in whole.items():
        assert torch.equal(got[name], torch.from_numpy(x)), name
    gguf_to_folder(path, bf16, "bf16")
    assert [p.name for p in bf16.glob("*.safetensors")] == ["model.safetensors"]
    got = exported(bf16)
    for name, x in whole.items():
        assert torch.equal(got[name], torch.from_numpy(x).to(torch.bfloat16)), name
    model, info = AutoModelForCausalLM.from_pretrained(f32, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}


def test_export_equals_transformers_gguf_loader(mixed, tmp_path):
    """transformers' own GGUF loader, an independent reading of the same file:
    equal bit for bit, but for qwen35's A_log = log(-ssm_a) (measured 1 ulp)."""
    arch, path = mixed
    gguf_to_folder(path, tmp_path / "hf", "f32")
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    theirs = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    state = theirs.state_dict()
    assert set(ours.state_dict()) == set(state)
    for name, x in ours.state_dict().items():
        if name.endswith("A_log"):
            torch.testing.assert_close(x, state[name], rtol=2**-21, atol=0)
        else:
            assert torch.equal(x, state[name]), name
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters", "tie_word_embeddings",
            "bos_token_id", "eos_token_id"] + (["layer_types", "linear_num_value_heads"] if arch == "qwen35" else [])
    assert {k: getattr(ours.config, k) for k in keys} == {k: getattr(theirs.config, k) for k in keys}


# --------------------------------------------------------------------------
# Memory

CHILD = """
import json, resource, sys
from pathlib import Path
from rys.checkpoint.hf.from_gguf import gguf_to_folder

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

warm, src, out = (Path(a) for a in sys.argv[1:4])
gguf_to_folder(warm, out / "warm", "bf16")  # lazy imports, the tokenizer: not the model
before = peak()
gguf_to_folder(src, out / "big", "bf16")
print(json.dumps({"before": before, "after": peak()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llama", "qwen35"])
def test_memory_follows_the_largest_tensor(arch, tmp_path):
    big = write_mixed_model(tmp_path / f"{arch}.gguf", arch, 12, WIDE)
    warm = write_mixed_model(tmp_path / "warm.gguf", arch, 2, SMALL)
    gf = gguf_file.read(big)
    largest = max(int(np.prod(t.shape)) * 4 for t in gf.tensors)  # the largest tensor in f32: 16.8 MB
    # the tensor in flight (f32, a transformed copy, bf16), gguf-py's temporaries, 32 MB for the allocator
    bound = 3 * largest + 3 * gguf_file.DEQUANT_STEP + (32 << 20)
    assert gf.size > 2 * bound  # 309-315 MB, the bound 134 MB
    r = subprocess.run([sys.executable, "-c", CHILD, warm, big, tmp_path], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rss = json.loads(r.stdout.strip().splitlines()[-1])
    grew = rss["after"] - rss["before"]  # measured 55-64 MB (before streaming: 800-890 MB in bf16)
    assert grew < bound, f"{grew >> 20} MB over the baseline for a {gf.size >> 20} MB file; bound {bound >> 20} MB"
