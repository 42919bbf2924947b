"""`rys prune --per-layer`: non-uniform counts under one budget, written as a deci GGUF.

The proof is a uniform-shape reference: the same checkpoint with the units
rys_prune.json does not keep zeroed (o_proj columns of dropped query heads,
down_proj columns of dropped channels: the only weights through which a unit
reaches the residual stream), converted the normal way by llama.cpp's own
converter to a llama GGUF. llama.cpp's logits on the deci file equal its
logits on that reference (measured 1.4e-6 to 2.3e-6 on these tiny models,
f32) and torch's float64 logits on the masked checkpoint (2.0e-6 to 2.6e-6).
(By hand on SmolLM2-135M, logits up to 31: 1.4e-4 and 1.6e-4, where llama.cpp
on the masked file is itself 1.9e-4 from torch.) Masking moves the logits by
more than 0.5 (asserted), so nothing passes vacuously.
The budget itself is checked on synthetic scores, where the answer is known.
"""

from __future__ import annotations

import json
import os
import shutil

import gguf
import numpy as np
import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="5.2")
pytest.importorskip("sentencepiece")

from click.testing import CliRunner  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from rys.checkpoint.prune import per_layer  # noqa: E402
from rys.cli import cli  # noqa: E402
from rys.core.errors import RysError  # noqa: E402
from rys.checkpoint.hf.names import ATTENTION  # noqa: E402
from rys.checkpoint.prune.importance import LayerScores  # noqa: E402
from rys.checkpoint.prune.uniform import Request, parse_amount  # noqa: E402
from rys.checkpoint.prune.rules import HEADS, KV_HEADS, MLP, Geometry  # noqa: E402
from support import sp_tokenizer  # noqa: E402
from support.hf_checkpoints import CALIB_TEXT, build_model, write_checkpoint  # noqa: E402
from support.hf_models import hf_logits  # noqa: E402
from support.llama_ref import llama_logits  # noqa: E402

TEXT = "Hello, world! The quick brown fox jumps over 12 lazy dogs."
TOL = 2e-5  # f32 llama.cpp against f32 llama.cpp / float64 torch; measured 1.4e-6 to 2.6e-6


# --------------------------------------------------------------------------
# The budget, on synthetic scores

OLD = Geometry(heads=6, kv_heads=2, mlp=32, v_heads=0, k_heads=0, head_dim=8, dk=0, dv=0)


def layer(i, heads, kv, mlp) -> LayerScores:
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return LayerScores(i, ATTENTION, {HEADS: t(heads), KV_HEADS: t(kv), MLP: t(mlp)})


def req(**amounts) -> Request:
    return Request(**{k: parse_amount(v, k) for k, v in amounts.items()}, criterion="random", multiple=8)


def counts(kept, unit):
    return [len(k[unit]) for k in kept]


def test_heads_go_where_scores_are_low_and_every_group_keeps_the_same_number():
    flat = [1.0] * 6
    skewed = [0.1, 0.1, 3.0, 0.1, 0.1, 3.0]  # two weak heads in each group
    layers = [layer(0, flat, [1, 1], [1.0] * 32), layer(1, skewed, [1, 1], [1.0] * 32)]
    new = OLD.with_counts(dict(heads=4))  # the uniform meaning of --heads 2: 8 of 12 heads stay
    kept = per_layer.plan(layers, OLD, new, req(heads="2"), bias=False)
    assert counts(kept, HEADS) == [6, 2]
    assert kept[1][HEADS] == [2, 5]  # the strong head of each group
    assert counts(kept, KV_HEADS) == [2, 2] and counts(kept, MLP) == [32, 32]


def test_query_heads_within_groups_stay_equal_even_when_kv_heads_differ():
    s = [[0.5, 1.0, 1.5, 0.2, 1.0, 1.8], [1.0, 1.1, 0.9, 1.0, 1.2, 0.8], [0.1, 0.2, 2.7, 1.0, 1.0, 1.0]]
    layers = [layer(i, h, kv, [1.0] * 32) for i, (h, kv) in enumerate(zip(s, [[1, 1], [0.2, 1.8], [1, 1]]))]
    new = OLD.with_counts(dict(kv_heads=1, heads=2))  # --kv-heads 1 --heads 1: 6 of 18 heads stay
    kept = per_layer.plan(layers, OLD, new, req(kv_heads="1", heads="1"), bias=False)
    for k in kept:
        groups = {h // 3 for h in k[HEADS]}
        assert groups <= set(k[KV_HEADS])
        assert len({sum(h // 3 == g for h in k[HEADS]) for g in k[KV_HEADS]}) <= 1  # the same number per group
    assert sum(counts(kept, HEADS)) == 6 and sum(counts(kept, KV_HEADS)) == 3


def test_a_layer_may_lose_its_attention_but_not_layer_0_nor_with_an_o_proj_bias():
    # all scores equal: steps go in layer order, so layer 0 would go first without its floor
    layers = [layer(i, [1.0] * 6, [1, 1], [1.0] * 32) for i in range(3)]
    new = OLD.with_counts(dict(kv_heads=1, heads=3))  # --kv-heads 1: 3 of 6 KV heads stay
    kept = per_layer.plan(layers, OLD, new, req(kv_heads="1"), bias=False)
    assert counts(kept, KV_HEADS) == [1, 0, 2] and counts(kept, HEADS) == [3, 0, 6]
    kept = per_layer.plan(layers, OLD, new, req(kv_heads="1"), bias=True)
    assert counts(kept, KV_HEADS) == [1, 1, 1]


def test_mlp_widths_are_multiples_and_never_zero():
    mlp = [[1.0] * 32, [0.01] * 24 + [3.0] * 8, [1.0] * 16 + [0.5] * 16]
    layers = [layer(i, [1.0] * 6, [1, 1], m) for i, m in enumerate(mlp)]
    new = OLD.with_counts(dict(mlp=16))  # --mlp 0.5: 48 of 96 channels stay
    kept = per_layer.plan(layers, OLD, new, req(mlp="0.5"), bias=False)
    assert counts(kept, MLP) == [24, 8, 16]
    assert kept[1][MLP] == list(range(24, 32))
    assert all(w % 8 == 0 and w >= 8 for w in counts(kept, MLP))


def test_widths_snap_down_to_the_multiple_first():
    old = OLD.with_counts(dict(mlp=36))
    layers = [layer(i, [1.0] * 6, [1, 1], [float(c) for c in range(36)]) for i in range(2)]
    kept = per_layer.plan(layers, old, old.with_counts(dict(mlp=24)), req(mlp="0.3"), bias=False)
    assert counts(kept, MLP) == [24, 24]
    assert kept[0][MLP] == list(range(12, 36))


def test_allocate_is_exact_when_the_sizes_allow_and_overshoots_by_less_than_a_step_otherwise():
    S = per_layer.Step
    steps = [S(0.1, 0, 0, 2), S(0.2, 0, 1, 2), S(0.3, 1, 0, 1), S(0.4, 1, 1, 1)]
    assert per_layer.allocate(steps, 3, 2) == [1, 1]  # 2 + 1, not 2 + 2
    assert per_layer.allocate(steps, 5, 2) == [2, 1]
    assert per_layer.allocate([S(0.1, 0, 0, 3)], 2, 1) == [1]  # the only way: 3 for 2
    with pytest.raises(RysError, match="cannot remove 4 units"):
        per_layer.allocate([S(0.1, 0, 0, 3)], 4, 1)


# --------------------------------------------------------------------------
# The command: bad input is one line and leaves nothing


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("per_layer")
    out = {arch: write_checkpoint(arch, root / arch, seed=2) for arch in ("llama", "qwen3")}
    (root / "calib.txt").write_text(CALIB_TEXT)
    return out


def invoke(*args):
    return CliRunner().invoke(cli, ["prune", "--per-layer", *map(str, args)])


RANDOM = ["--criterion", "random", "--multiple", "8"]
BAD = [
    ("qwen3", ["--mlp", "0.5", *RANDOM], "--per-layer writes llama.cpp's deci architecture, which holds llama-style "
                                         "blocks only (llama, mistral), not qwen3: prune it without --per-layer"),
    ("llama", ["--deltanet-v-heads", "1", *RANDOM], "--deltanet-v-heads cannot go with it"),
    ("llama", ["--mlp", "0.5", "--mask-only", *RANDOM], "--mask-only cannot go with --per-layer"),
    ("llama", ["--mlp", "0.5", *RANDOM, "-o", "{dir}/out"], "--per-layer writes a deci GGUF file: name the output "
                                                             "*.gguf, not out"),
    ("llama", ["--mlp", "0.5", *RANDOM, "-o", "{dir}/old.gguf"], "{dir}/old.gguf exists; use --force to overwrite"),
    ("llama", ["--heads", "0.1", *RANDOM], "--heads 0.1 removes no query head"),
]


@pytest.mark.parametrize("model, args, message", BAD, ids=[m.split(":")[0][:40] for _, _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(model, args, message, small, tmp_path):
    (tmp_path / "old.gguf").write_bytes(b"old")
    args = [a.format(dir=tmp_path) for a in args]
    out = ["-o", str(tmp_path / "out.gguf")] if "-o" not in args else []
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(small[model]))
    r = invoke(small[model], *out, *args)
    assert r.exit_code == 1, r.output
    assert r.stdout == "" and r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message.format(dir=tmp_path) in r.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(small[model]))) == before
    assert (tmp_path / "old.gguf").read_bytes() == b"old"


def test_help_names_the_option():
    r = CliRunner().invoke(cli, ["prune", "--help"])
    assert r.exit_code == 0 and "--per-layer" in r.output and "deci" in r.output


# --------------------------------------------------------------------------
# Against the uniform-shape reference, in llama.cpp and torch


def checkpoint(arch, folder, proto, **overrides):
    model = build_model(arch, seed=4, vocab_size=sp_tokenizer.N_VOCAB, **overrides)
    model.save_pretrained(folder)
    sp_tokenizer.write(folder, proto)
    return folder


def masked(src, provenance, folder):
    """The source with every unit the provenance does not keep zeroed (same shapes), saved and
    converted by llama.cpp's converter: (the torch model, its f32 llama GGUF)."""
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    hd = model.config.head_dim
    with torch.no_grad():
        for entry in provenance["layers"]:
            block = model.model.layers[entry["index"]]
            for h in set(range(model.config.num_attention_heads)) - set(entry["heads_kept"]):
                block.self_attn.o_proj.weight[:, h * hd:(h + 1) * hd] = 0
            for c in set(range(model.config.intermediate_size)) - set(entry["mlp_kept"]):
                block.mlp.down_proj.weight[:, c] = 0
    model.save_pretrained(folder)
    shutil.copy(src / "tokenizer.model", folder)
    r = CliRunner().invoke(cli, ["convert", str(folder), str(folder) + ".gguf", "--outtype", "f32"])
    assert r.exit_code == 0, r.output
    return model, folder.with_name(folder.name + ".gguf")


def check_against_reference(src, out, proto, tmp_path):
    """llama.cpp on the deci file = llama.cpp on the masked llama file = torch on the masked model."""
    provenance = json.loads(per_layer.provenance_path(out).read_text())
    model, ref = masked(src, provenance, tmp_path / "masked")
    sp = sp_tokenizer.write(tmp_path, proto)
    ids = [sp_tokenizer.BOS_ID] + sp.encode(TEXT)
    deci, uniform = llama_logits(out, ids, kv_f32=True), llama_logits(ref, ids, kv_f32=True)
    torch_masked = hf_logits(model, ids)
    original = hf_logits(AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32), ids)
    to_uniform, to_torch = np.abs(deci - uniform).max(), np.abs(deci - torch_masked).max()
    print(f"deci vs masked llama GGUF {to_uniform:.1e}, vs torch float64 {to_torch:.1e}")  # -s shows it
    assert to_uniform < TOL and to_torch < TOL, (to_uniform, to_torch)
    assert np.abs(torch_masked - original).max() > 0.5
    return provenance, ref


def read_gguf(path):
    """(metadata values, f32 tensors in numpy order) by gguf-py's own reader."""
    reader = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return meta, {t.name: np.array(t.data) for t in reader.tensors}


def check_file(out, provenance):
    """The deci keys say what the provenance says, and every layer's tensors have those shapes."""
    meta, tensors = read_gguf(out)
    layers = provenance["layers"]
    assert meta["general.architecture"] == "deci" and meta["deci.block_count"] == len(layers)
    assert meta["deci.attention.head_count"] == [len(x["heads_kept"]) for x in layers]
    assert meta["deci.attention.head_count_kv"] == [len(x["kv_heads_kept"]) for x in layers]
    assert meta["deci.feed_forward_length"] == [len(x["mlp_kept"]) for x in layers]
    assert meta["tokenizer.ggml.model"] == "llama" and len(meta["tokenizer.ggml.tokens"]) == sp_tokenizer.N_VOCAB
    for i, x in enumerate(layers):
        assert tensors[f"blk.{i}.ffn_down.weight"].shape[1] == len(x["mlp_kept"])
        assert (f"blk.{i}.attn_q.weight" in tensors) == bool(x["kv_heads_kept"])
    return meta, tensors


@pytest.fixture(scope="module")
def proto():
    return sp_tokenizer.model_proto()


@pytest.mark.slow
def test_activation_pruning_is_non_uniform_and_equals_its_reference(proto, tmp_path):
    # mistral: 6 heads over 2 KV heads, head_dim 8 (6 x 8 != hidden 32), no biases
    src = checkpoint("mistral", tmp_path / "mistral", proto)
    (tmp_path / "calib.txt").write_text(CALIB_TEXT)
    out = tmp_path / "pruned.gguf"
    r = invoke(src, "-o", out, "--heads", "2", "--mlp", "0.25", "--multiple", "8", "--calib", tmp_path / "calib.txt",
               "--calib-tokens", "200", "-q")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{out}\n"
    assert "mistral -> deci, 3 layers: query heads 18 -> 12, MLP 192 -> 144 (query heads per layer " in r.stderr
    provenance, _ = check_against_reference(src, out, proto, tmp_path)
    heads, mlp = ([len(x[f"{u}_kept"]) for x in provenance["layers"]] for u in ("heads", "mlp"))
    assert len(set(heads)) > 1 and len(set(mlp)) > 1  # really non-uniform
    assert provenance["totals"]["after"] == provenance["totals"]["budget"] == {"heads": 12, "kv_heads": 6, "mlp": 144}
    assert all(w % 8 == 0 for w in mlp) and heads[0] > 0
    for x in provenance["layers"]:  # GQA: every KV group keeps the same number of query heads
        assert len({sum(h // 3 == g for h in x["heads_kept"]) for g in x["kv_heads_kept"]}) == 1
    check_file(out, provenance)
    assert sorted(os.listdir(tmp_path)) == sorted(["calib.txt", "masked", "masked.gguf", "mistral", "pruned.gguf",
                                                   "pruned.gguf.rys_prune.json", "tokenizer.model"])


@pytest.mark.slow
def test_biases_tied_embeddings_and_llama3_rope(proto, tmp_path):
    rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    src = checkpoint("llama", tmp_path / "llama", proto, rope_parameters=rope)  # biases, tied embeddings
    out = tmp_path / "pruned.gguf"
    r = invoke(src, "-o", out, "--kv-heads", "1", "--mlp", "0.25", *RANDOM, "--seed", "3", "-q")
    assert r.exit_code == 0, r.output
    assert "note: o_proj has a bias: every layer keeps at least one KV head" in r.stderr
    provenance, ref = check_against_reference(src, out, proto, tmp_path)
    _, tensors = check_file(out, provenance)
    _, converted = read_gguf(ref)
    assert "output.weight" not in tensors and "blk.0.attn_q.bias" in tensors
    assert np.abs(tensors["rope_freqs.weight"] - converted["rope_freqs.weight"]).max() < 1e-6
    assert len(set(tensors["rope_freqs.weight"].tolist())) > 2  # 1, 8 and one smoothed factor


@pytest.mark.slow
def test_a_layer_without_attention_loads_and_computes_the_reference(proto, tmp_path, monkeypatch):
    src = checkpoint("mistral", tmp_path / "mistral", proto)
    plan = [{KV_HEADS: [0, 1], HEADS: [0, 2, 4, 5], MLP: list(range(0, 64, 2))},
            {KV_HEADS: [], HEADS: [], MLP: list(range(8, 64))},
            {KV_HEADS: [1], HEADS: [3, 4, 5], MLP: list(range(40))}]
    monkeypatch.setattr(per_layer, "plan", lambda *a, **k: plan)
    out = tmp_path / "pruned.gguf"
    r = invoke(src, "-o", out, "--kv-heads", "1", "--mlp", "0.25", *RANDOM, "-q")
    assert r.exit_code == 0, r.output
    provenance, _ = check_against_reference(src, out, proto, tmp_path)
    _, tensors = check_file(out, provenance)
    assert "blk.1.attn_norm.weight" not in tensors and "blk.1.ffn_norm.weight" in tensors


@pytest.mark.slow
def test_an_interrupted_write_leaves_nothing(proto, tmp_path, monkeypatch):
    src = checkpoint("mistral", tmp_path / "mistral", proto)
    (tmp_path / "old.gguf").write_bytes(b"old")
    made = []

    def array(self, entry):
        made.append(entry.gguf)
        if len(made) == 6:
            raise KeyboardInterrupt
        return original(self, entry)

    original = per_layer.LayerSource.array
    monkeypatch.setattr(per_layer.LayerSource, "array", array)
    r = invoke(src, "-o", tmp_path / "old.gguf", "--mlp", "0.25", *RANDOM, "--force", "-q")
    assert r.exit_code == 1 and "Aborted" in r.stderr and len(made) == 6
    assert sorted(os.listdir(tmp_path)) == ["mistral", "old.gguf"]
    assert (tmp_path / "old.gguf").read_bytes() == b"old"
