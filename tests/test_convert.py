"""`rys convert` both ways.

HF -> GGUF goes through llama.cpp's own convert_hf_to_gguf.py; on tiny random
checkpoints built with transformers' classes, llama.cpp's logits on the
result must equal torch's (float64 reference, f32 GGUF; measured about 1e-6
for llama, qwen2, qwen3 and 7e-6 for Qwen3.5, against a 1e-4 bound). GGUF ->
HF goes through rys's own mapping, streamed (qwen35; llama: the real SmolLM2,
checked against transformers' GGUF loader), or transformers' loader for a
file rys's mapping does not fit, and back again. test_export_memory.py
checks the streamed tensors and the memory they take.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from click.testing import CliRunner  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from rys.core import gguf_file  # noqa: E402
from rys.cli import cli  # noqa: E402
from rys.core.errors import RysError  # noqa: E402
from rys.core.gguf_file import write_arrays  # noqa: E402
from rys.checkpoint.hf.mapping import hf_to_gguf  # noqa: E402
from rys.checkpoint.hf.from_gguf import loader_for  # noqa: E402
from support import sp_tokenizer  # noqa: E402
from support.hf_checkpoints import build_model  # noqa: E402
from support.hf_models import hf_config, hf_logits, hf_tensors, tiny_hf_model  # noqa: E402
from support.tiny_vocab import add_byte_vocab  # noqa: E402
from support.llama_ref import llama_logits  # noqa: E402

pytestmark = pytest.mark.torch

TEXT = "Hello, world! The quick brown fox jumps over 12 lazy dogs."


def rys(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def convert_ok(*args):
    r = rys("convert", *args)
    assert r.exit_code == 0, r.output
    return r


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(p || q) per position, in nats."""
    lp, lq = log_softmax(p_logits.astype(np.float64)), log_softmax(q_logits.astype(np.float64))
    return (np.exp(lp) * (lp - lq)).sum(-1)


@pytest.fixture(scope="module")
def sp_proto() -> bytes:
    return sp_tokenizer.model_proto()


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_checkpoint_to_gguf_matches_torch(arch, sp_proto, tmp_path):
    model = build_model(arch, seed=3, vocab_size=sp_tokenizer.N_VOCAB)
    folder, out = tmp_path / arch, tmp_path / f"{arch}.gguf"
    model.save_pretrained(folder)
    sp = sp_tokenizer.write(folder, sp_proto)
    r = convert_ok(folder, out, "--outtype", "f32")
    assert r.stdout == f"{out}\n"
    assert "hf->gguf" in r.stderr and "(f32) by llama.cpp's convert_hf_to_gguf.py" in r.stderr
    assert {t.type_name for t in gguf_file.read(out).tensors} == {"F32"}
    ids = [sp_tokenizer.BOS_ID] + sp.encode(TEXT)
    got = llama_logits(out, ids, kv_f32=True)
    assert np.abs(got - hf_logits(model, ids)).max() < 1e-4


def test_outtype_goes_to_the_converter(sp_proto, tmp_path):
    folder, out = tmp_path / "llama", tmp_path / "llama-q8_0.gguf"
    build_model("llama", seed=3, vocab_size=sp_tokenizer.N_VOCAB).save_pretrained(folder)
    sp_tokenizer.write(folder, sp_proto)
    assert "(q8_0) by llama.cpp's convert_hf_to_gguf.py" in convert_ok(folder, out, "--outtype", "q8_0").stderr
    assert "Q8_0" in {t.type_name for t in gguf_file.read(out).tensors}


# --------------------------------------------------------------------------
# Qwen3.5: the converter takes only BPE tokenizers it knows, so the tiny
# model borrows SmolLM2's (vocabulary 49152); 4 value heads over 2 key heads
# exercise the converter's DeltaNet head reordering.


@pytest.fixture(scope="module")
def qwen35(smollm2, tmp_path_factory):
    """(torch model, its checkpoint folder, the GGUF llama.cpp's converter made of it, stderr)."""
    tmp = tmp_path_factory.mktemp("qwen35")
    model = build_model("qwen35", seed=3, vocab_size=49152)
    folder, out = tmp / "ckpt", tmp / "qwen35.gguf"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(smollm2.parent), gguf_file=smollm2.name).save_pretrained(folder)
    r = convert_ok(folder, out, "--outtype", "f32")
    return model, folder, out, r.stderr


def qwen35_ids(folder) -> list[int]:
    return AutoTokenizer.from_pretrained(folder).encode(TEXT)


def test_qwen35_checkpoint_to_gguf_matches_torch(qwen35):
    model, folder, out, stderr = qwen35
    assert "note: --no-mtp: the checkpoint has no multi-token-prediction (mtp.*) tensors" in stderr
    ids = qwen35_ids(folder)
    got = llama_logits(out, ids, kv_f32=True)
    assert np.abs(got - hf_logits(model, ids)).max() < 1e-4


def test_qwen35_gguf_to_checkpoint_with_rys_mapping_round_trips(qwen35, tmp_path):
    model, folder, gguf_path, _ = qwen35
    out = tmp_path / "back"
    out.mkdir()
    (out / "stale.txt").write_text("an older conversion")
    r = convert_ok(gguf_path, out, "--outtype", "f32", "--force")
    assert not (out / "stale.txt").exists() and [p for p in tmp_path.iterdir() if p != out] == []
    assert r.stdout == f"{out}\n" and "by rys's qwen35 mapping" in r.stderr
    back, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    assert type(back).__name__ == "Qwen3_5ForCausalLM"
    ids = qwen35_ids(folder)
    assert AutoTokenizer.from_pretrained(out).encode(TEXT) == ids
    assert np.abs(hf_logits(back, ids) - hf_logits(model, ids)).max() < 1e-6


@pytest.mark.slow
def test_quantized_gguf_is_dequantized(qwen35, tmp_path):
    """Q8_0 -> checkpoint: every weight within half a Q8_0 step of the original
    (32 values share a scale, max |w| of the block / 127, stored in f16), bf16 by default."""
    model, folder, gguf_path, _ = qwen35
    q8, f32, bf16 = tmp_path / "q8.gguf", tmp_path / "f32", tmp_path / "bf16"
    assert rys("quantize", gguf_path, q8, "Q8_0").exit_code == 0
    assert "Q8_0" in {t.type_name for t in gguf_file.read(q8).tensors}
    convert_ok(q8, f32, "--outtype", "f32")
    back = AutoModelForCausalLM.from_pretrained(f32, dtype=torch.float32)
    w = model.model.layers[1].self_attn.o_proj.weight.detach()  # [32, 64]: rows of two blocks
    err = (w - back.model.layers[1].self_attn.o_proj.weight).abs().reshape(-1, 32)
    step = w.abs().reshape(-1, 32).max(-1, keepdim=True).values / 127
    # rounding to the nearest step, plus the scale's own f16 rounding (2^-11 relative) times up to 127
    assert (err <= step * (0.5 + 127 * 2**-11)).all()
    assert err.max() > 0.4 * step.min()  # it was quantized
    ids = qwen35_ids(folder)
    assert kl(hf_logits(model, ids), hf_logits(back, ids)).max() < 0.02  # Q8_0's own cost: measured 0.005
    convert_ok(q8, bf16)
    assert AutoModelForCausalLM.from_pretrained(bf16).dtype == torch.bfloat16


# --------------------------------------------------------------------------
# SmolLM2: the real model, through rys's llama mapping and back


@pytest.fixture(scope="module")
def smollm2_hf(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "hf"
    r = convert_ok(smollm2, out, "--outtype", "f32")
    assert "by rys's llama mapping" in r.stderr
    return out


@pytest.mark.slow
def test_smollm2_to_checkpoint_and_back(smollm2, smollm2_hf, tmp_path):
    model, info = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    ids = AutoTokenizer.from_pretrained(smollm2_hf).encode("The capital of France is Paris. The capital of "
                                                           "Germany is Berlin, and the capital of Italy is")
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0].double().numpy()
    # llama.cpp multiplies Q4_1 weights by activations rounded to 8 bits, torch the
    # dequantized weights in f32: measured top-1 equal everywhere, KL mean 0.003, max 0.01
    q4 = llama_logits(smollm2, ids, kv_f32=True)
    assert (q4.argmax(-1) == hf.argmax(-1)).mean() >= 0.9
    assert kl(q4, hf).mean() < 0.01
    rt = tmp_path / "rt.gguf"
    convert_ok(smollm2_hf, rt, "--outtype", "f32")
    back = llama_logits(rt, ids, kv_f32=True)  # f32 both sides: measured 6e-5 over 30 layers
    assert np.abs(back - hf).max() < 1e-3
    # Q4_1 against f32 (8-bit activations, other kernels on other CPUs): a near tie may flip
    assert (back.argmax(-1) == q4.argmax(-1)).mean() >= 0.9


@pytest.mark.slow
def test_smollm2_checkpoint_equals_transformers_gguf_loader(smollm2, smollm2_hf):
    """transformers' own GGUF loader, an independent reading of the Q4_1 file, gives the same weights."""
    ours = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32)
    theirs = AutoModelForCausalLM.from_pretrained(str(smollm2.parent), gguf_file=smollm2.name, dtype=torch.float32)
    state = theirs.state_dict()
    assert set(ours.state_dict()) == set(state)
    assert [k for k, x in ours.state_dict().items() if not torch.equal(x, state[k])] == []
    # transformers also records where it loaded from and the tokenizer's unknown token; rys, the class
    mine = {k: v for k, v in ours.config.to_diff_dict().items() if k != "architectures"}
    other = theirs.config.to_diff_dict()
    assert mine == {k: v for k, v in other.items() if k not in ("_model_name_or_path", "quantization_config",
                                                                 "unk_token_id")}


# --------------------------------------------------------------------------
# Bad input: one line, exit 1, nothing left behind


def test_converter_failure_is_one_line_with_its_reason_and_log(tmp_path):
    folder = tmp_path / "foo"
    build_model("llama", seed=0).save_pretrained(folder)
    config = (folder / "config.json").read_text().replace('"LlamaForCausalLM"', '"FooForCausalLM"')
    (folder / "config.json").write_text(config)
    before = sorted(os.listdir(tmp_path))
    r = rys("convert", folder, tmp_path / "foo.gguf")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert "convert_hf_to_gguf.py on foo failed (exit status 1): Model FooForCausalLM is not supported; log: " \
        in r.stderr
    log = r.stderr.strip().rsplit("log: ", 1)[1]
    assert os.path.isfile(log)
    os.unlink(log)
    assert sorted(os.listdir(tmp_path)) == before


BAD = [
    (["{missing}", "{tmp}/o"], "no such file or folder"),
    (["{text}", "{tmp}/o"], "is neither a .gguf file nor a Hugging Face checkpoint folder"),
    (["{model}", "{tmp}/o.gguf"], "it converts to a checkpoint folder, not to o.gguf"),
    (["{model}", "{tmp}/o", "--outtype", "f16"], "a GGUF converts to a checkpoint in f32 or bf16"),
    (["{model}", "{tmp}/o", "--outtype", "q4"], "unknown --outtype 'q4': choose one of f32, f16, bf16, q8_0"),
    (["{model}", "{tmp}/existing"], "existing exists; use --force"),
    (["{model}", "{tmp}/no/o"], "output folder"),
    (["{empty}", "{tmp}/o.gguf"], "is not a Hugging Face checkpoint folder (no config.json)"),
    (["{noweights}", "{tmp}/o.gguf"], "has a config.json but no weights"),
    (["{ckpt}", "{tmp}/o.bin"], "name it *.gguf, not o.bin"),
    (["{ckpt}", "{tmp}/existing.gguf"], "existing.gguf exists; use --force"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(args, message, llama8, tmp_path):
    for name in ("empty", "noweights", "ckpt", "existing"):
        (tmp_path / name).mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"")
    (tmp_path / "t.txt").write_text("not a model\n")
    (tmp_path / "existing.gguf").write_bytes(b"x")
    subs = {"tmp": tmp_path, "missing": tmp_path / "nope.gguf", "text": tmp_path / "t.txt", "model": llama8,
            "empty": tmp_path / "empty", "noweights": tmp_path / "noweights", "ckpt": tmp_path / "ckpt"}
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(llama8.parent))
    r = rys("convert", *[a.format(**subs) for a in args])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(llama8.parent))) == before


def test_an_architecture_neither_loader_knows_is_refused():
    with pytest.raises(RysError, match="cannot convert architecture 'rwkv7'.*rys maps only llama, qwen35"):
        loader_for("rwkv7")
    assert loader_for("llama") == loader_for("qwen35") == "rys" and loader_for("qwen2") == "transformers"


def test_a_file_rys_cannot_map_goes_to_transformers(tmp_path):
    """A llama file with a tensor rys's mapping lacks (Llama 3's rope_freqs) converts with transformers' loader."""
    model = tiny_hf_model("llama", seed=1)
    meta, tensors = hf_to_gguf("llama", hf_config(model), hf_tensors(model))
    path = tmp_path / "llama3ish.gguf"
    write_arrays(path, meta, tensors + [("rope_freqs.weight", np.ones(8, np.float32))], add_byte_vocab)
    r = convert_ok(path, tmp_path / "hf", "--outtype", "f32")
    assert "by transformers' GGUF loader" in r.stderr
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    assert torch.equal(back.model.layers[1].mlp.down_proj.weight, model.model.layers[1].mlp.down_proj.weight)


# --------------------------------------------------------------------------
# Pruned checkpoints convert and run in llama.cpp as they run in torch


@pytest.mark.parametrize("arch, prune", [
    ("llama", ["--heads", "2", "--mlp", "32", "--multiple", "32"]),  # 2 of 4 heads: heads x head_dim != hidden
    ("qwen2", ["--mlp", "32", "--multiple", "32"]),  # MLP only: llama.cpp fixes qwen2's query width
    ("qwen3", ["--kv-heads", "1", "--mlp", "32", "--multiple", "32"]),
])
def test_a_pruned_checkpoint_converts_and_matches_torch(arch, prune, sp_proto, tmp_path):
    folder, pruned, out = tmp_path / arch, tmp_path / f"{arch}-pruned", tmp_path / f"{arch}-pruned.gguf"
    build_model(arch, seed=5, vocab_size=sp_tokenizer.N_VOCAB).save_pretrained(folder)
    sp = sp_tokenizer.write(folder, sp_proto)
    r = rys("prune", folder, "-o", pruned, "--criterion", "magnitude", "-q", *prune)
    assert r.exit_code == 0, r.output
    convert_ok(pruned, out, "--outtype", "f32")
    model = AutoModelForCausalLM.from_pretrained(pruned, torch_dtype="float32").eval()
    ids = [sp_tokenizer.BOS_ID] + sp.encode(TEXT)
    assert np.abs(llama_logits(out, ids, kv_f32=True) - hf_logits(model, ids)).max() < 1e-4


def test_a_pruned_qwen35_converts_and_matches_torch(qwen35, tmp_path):
    _, folder, _, _ = qwen35
    pruned, out = tmp_path / "qwen35-pruned", tmp_path / "qwen35-pruned.gguf"
    r = rys("prune", folder, "-o", pruned, "--criterion", "magnitude", "-q", "--heads", "2",
            "--deltanet-v-heads", "2", "--mlp", "32", "--multiple", "32")
    assert r.exit_code == 0, r.output
    convert_ok(pruned, out, "--outtype", "f32")
    model = AutoModelForCausalLM.from_pretrained(pruned, torch_dtype="float32").eval()
    ids = qwen35_ids(folder)
    assert np.abs(llama_logits(out, ids, kv_f32=True) - hf_logits(model, ids)).max() < 1e-4
