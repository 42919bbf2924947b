"""`rys prune` on tiny random HF checkpoints: defrag is exact, and what it writes reloads.

For every architecture and every combination of the units it can prune, the
pruned checkpoint's logits equal those of the --mask-only checkpoint (same
shapes, pruned units zeroed), both run by transformers in float64. Measured:
0.0 (the zeroed units add exact zeros); the tolerance is 1e-6. Masking moves
the logits by more than 0.5 in every case (asserted), so no comparison
passes vacuously. A second, independent reference zeroes in memory only the
output columns (o_proj, out_proj, down_proj) of the units rys_prune.json
does not list, so the provenance is checked against the weights too.
"""

from __future__ import annotations

import itertools
import json

import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="5.2")

from support.hf_checkpoints import build_model, load, logits, token_ids, write_checkpoint  # noqa: E402

from rys.checkpoint.prune.uniform import Request, parse_amount, prepare, run  # noqa: E402

TOL = 1e-6
AMOUNTS = {"heads": "0.5", "kv_heads": "1", "mlp": "0.25", "v_heads": "0.5"}
UNITS = {"llama": ("heads", "kv_heads", "mlp"), "mistral": ("heads", "kv_heads", "mlp"), "qwen2": ("mlp",),
         "qwen3": ("heads", "kv_heads", "mlp"), "qwen35": ("heads", "kv_heads", "mlp", "v_heads")}


def combos():
    for arch, units in UNITS.items():
        for c in (c for n in range(1, len(units) + 1) for c in itertools.combinations(units, n)):
            yield pytest.param(arch, c, id=f"{arch}-{'+'.join(c)}")


def request(units, amounts=None, **kw) -> Request:
    amounts = {u: parse_amount(dict(AMOUNTS, **(amounts or {}))[u], u) for u in units}
    return Request(**amounts, **dict(dict(criterion="random", multiple=8, seed=7), **kw))


def prune(src, out, units, amounts=None, **kw) -> dict:
    return run(prepare(src, out, request(units, amounts, **kw)))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {arch: write_checkpoint(arch, root / arch, seed=3) for arch in UNITS}


def check_loads(folder):
    model, info = load(folder)
    assert {k: v for k, v in info.items() if v} == {}, f"{folder}: {info}"
    return model


@pytest.mark.parametrize("arch, units", list(combos()))
def test_defrag_equals_mask(arch, units, sources, tmp_path):
    src = sources[arch]
    p = prune(src, tmp_path / "pruned", units)
    m = prune(src, tmp_path / "masked", units, mask_only=True)
    assert p["layers"] == m["layers"] and m["mask_only"] and not p["mask_only"]
    ids = token_ids()
    pruned, masked = logits(check_loads(tmp_path / "pruned"), ids), logits(check_loads(tmp_path / "masked"), ids)
    original = logits(check_loads(src), ids)
    assert (pruned - masked).abs().max().item() <= TOL
    assert (masked - original).abs().max().item() > 0.5
    assert p["params_after"] < p["params_before"] == m["params_before"]


def independent_mask(model, provenance):
    """Zero the output columns of every unit rys_prune.json does not keep (the only weights
    through which a unit reaches the residual stream)."""
    cfg = model.config
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    sd = model.state_dict()
    with torch.no_grad():
        for layer in provenance["layers"]:
            pre = f"model.layers.{layer['index']}."
            columns = [("mlp.down_proj.weight", layer["mlp_kept"], 1)]
            if layer["heads_kept"] is not None:
                columns.append(("self_attn.o_proj.weight", layer["heads_kept"], hd))
            if layer["v_heads_kept"] is not None:
                columns.append(("linear_attn.out_proj.weight", layer["v_heads_kept"], cfg.linear_value_head_dim))
            for name, kept, width in columns:
                w = sd[pre + name]
                gone = [u for u in range(w.shape[1] // width) if u not in kept]
                for u in gone:
                    w[:, u * width:(u + 1) * width] = 0
    return model


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen3", "qwen35"])
def test_provenance_names_the_units_that_stay(arch, sources, tmp_path):
    units = UNITS[arch]
    p = prune(sources[arch], tmp_path / "out", units)
    ids = token_ids()
    reference = independent_mask(check_loads(sources[arch]), p)
    diff = (logits(check_loads(tmp_path / "out"), ids) - logits(reference, ids)).abs().max().item()
    assert diff <= TOL


def test_gqa_groups_keep_the_same_count(sources, tmp_path):
    """mistral: 6 query heads over 2 KV heads (groups of 3)."""
    p = prune(sources["mistral"], tmp_path / "a", ("heads",), {"heads": "2"})  # one from each group
    for layer in p["layers"]:
        groups = [h // 3 for h in layer["heads_kept"]]
        assert groups == [0, 0, 1, 1]  # 2 of 3 per group, sorted
        assert layer["kv_heads_kept"] == [0, 1]
    p = prune(sources["mistral"], tmp_path / "b", ("kv_heads",))
    chosen = set()
    for layer in p["layers"]:
        (kv,) = layer["kv_heads_kept"]
        assert layer["heads_kept"] == [3 * kv, 3 * kv + 1, 3 * kv + 2]  # a KV head's query heads go with it
        chosen.add(kv)
    assert p["counts"]["after"] == {"heads": 3, "kv_heads": 1, "mlp": 64, "v_heads": 0}
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (3, 1, 8)


def test_which_units_go_differs_per_layer(sources, tmp_path):
    p = prune(sources["llama"], tmp_path / "out", ("mlp",))
    kept = [tuple(layer["mlp_kept"]) for layer in p["layers"]]
    assert len(set(kept)) == len(kept) and all(len(k) == 48 for k in kept)
    assert all(list(k) == sorted(k) for k in kept)


def test_config_and_files(sources, tmp_path):
    src = sources["llama"]
    prune(src, tmp_path / "out", ("heads", "mlp"))
    before = json.loads((src / "config.json").read_text())
    after = json.loads((tmp_path / "out" / "config.json").read_text())
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"num_attention_heads", "intermediate_size"}  # head_dim: llama's config writes it
    assert (after["num_attention_heads"], after["num_key_value_heads"], after["head_dim"], after["intermediate_size"]) == (2, 2, 8, 48)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "rys_prune.json"}
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()


def test_head_dim_is_written_when_the_config_derives_it(sources, tmp_path):
    src = tmp_path / "src"
    write_checkpoint("llama", src, seed=3)
    cfg = json.loads((src / "config.json").read_text())
    del cfg["head_dim"]
    (src / "config.json").write_text(json.dumps(cfg))
    prune(src, tmp_path / "out", ("heads",))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["head_dim"] == 8
    check_loads(tmp_path / "out")


def test_tied_embeddings_stay_tied(sources, tmp_path):
    prune(sources["llama"], tmp_path / "out", ("mlp",))
    model = check_loads(tmp_path / "out")
    assert model.config.tie_word_embeddings
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()


def test_deltanet_value_head_slices(sources, tmp_path):
    """nk=2 key heads, nv=4 value heads (groups of 2), dk=dv=8: one value head goes per group."""
    src = sources["qwen35"]
    p = prune(src, tmp_path / "out", ("v_heads",))
    from safetensors.torch import load_file

    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (cfg["linear_num_value_heads"], cfg["linear_num_key_heads"], cfg["linear_value_head_dim"]) == (2, 2, 8)
    for layer in p["layers"]:
        if layer["kind"] != "deltanet":
            assert layer["v_heads_kept"] is None
            continue
        kept = layer["v_heads_kept"]
        assert [j // 2 for j in kept] == [0, 1]  # one per key-head group
        rows = torch.cat([torch.arange(j * 8, (j + 1) * 8) for j in kept])
        pre = f"model.layers.{layer['index']}.linear_attn."
        qk = 2 * 2 * 8
        assert torch.equal(b[pre + "in_proj_qkv.weight"], torch.cat([a[pre + "in_proj_qkv.weight"][:qk], a[pre + "in_proj_qkv.weight"][qk + rows]]))
        assert torch.equal(b[pre + "conv1d.weight"], torch.cat([a[pre + "conv1d.weight"][:qk], a[pre + "conv1d.weight"][qk + rows]]))
        assert torch.equal(b[pre + "in_proj_z.weight"], a[pre + "in_proj_z.weight"][rows])
        assert torch.equal(b[pre + "out_proj.weight"], a[pre + "out_proj.weight"][:, rows])
        for name in ("in_proj_a.weight", "in_proj_b.weight", "A_log", "dt_bias"):
            assert torch.equal(b[pre + name], a[pre + name][kept])
        assert torch.equal(b[pre + "norm.weight"], a[pre + "norm.weight"])


def test_qwen35_gated_query_heads_move_with_their_gates(sources, tmp_path):
    src = sources["qwen35"]
    p = prune(src, tmp_path / "out", ("heads",))
    from safetensors.torch import load_file

    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    for layer in p["layers"]:
        if layer["kind"] == "attention":
            name = f"model.layers.{layer['index']}.self_attn.q_proj.weight"
            rows = torch.cat([torch.arange(2 * h * 16, 2 * (h + 1) * 16) for h in layer["heads_kept"]])
            assert torch.equal(b[name], a[name][rows])


def test_sharded_input_gives_the_same_shards(tmp_path):
    src = write_checkpoint("qwen3", tmp_path / "src", seed=3, shard_kb=40)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    prune(src, tmp_path / "out", ("kv_heads", "mlp"))
    out = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert out["weight_map"] == index["weight_map"]
    files = sorted(set(index["weight_map"].values()))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == files
    assert out["metadata"]["total_size"] == sum((tmp_path / "out" / f).stat().st_size for f in files) - sum(
        8 + int.from_bytes((tmp_path / "out" / f).read_bytes()[:8], "little") for f in files)
    check_loads(tmp_path / "out")


def test_bfloat16_weights_stay_bfloat16(tmp_path):
    model = build_model("qwen35", 3).to(torch.bfloat16)
    src = write_checkpoint("qwen35", tmp_path / "src", model=model)
    prune(src, tmp_path / "out", ("heads", "v_heads", "mlp"))
    prune(src, tmp_path / "mask", ("heads", "v_heads", "mlp"), mask_only=True)
    ids = token_ids()
    diff = (logits(check_loads(tmp_path / "out"), ids) - logits(check_loads(tmp_path / "mask"), ids)).abs().max()
    assert diff.item() <= TOL


def test_reader_holds_one_layer_at_a_time(sources, tmp_path, monkeypatch):
    """Instrumented Checkpoint.read: every call reads one global tensor or one layer's tensors,
    and when it is called no tensor from an earlier call is still alive."""
    import weakref

    from rys.checkpoint.hf import folder as hf_checkpoint

    calls, alive = [], []
    real = hf_checkpoint.Checkpoint.read

    def read(self, names):
        names = list(names)
        calls.append((names, sum(1 for r in alive if r() is not None)))
        out = real(self, names)
        alive.extend(weakref.ref(t) for t in out.values())
        return out

    monkeypatch.setattr(hf_checkpoint.Checkpoint, "read", read)
    calib = tmp_path / "c.txt"
    calib.write_text("one layer at a time, " * 50)
    prune(sources["qwen35"], tmp_path / "out", ("heads", "mlp", "v_heads"), criterion="activation", calib=calib,
          calib_tokens=600)
    layers_read = [{n.split(".")[2] for n in names} for names, _ in calls if names[0].startswith("model.layers.")]
    assert all(len(s) == 1 for s in layers_read) and len(layers_read) == 2 * 4  # calibration + writing
    assert all(len(names) == 1 for names, _ in calls if not names[0].startswith("model.layers."))
    assert [live for _, live in calls] == [0] * len(calls)


def test_qwen35_mtp_tensors_are_dropped(tmp_path):
    """Qwen3.5 checkpoints may carry an MTP layer (mtp.*) that the causal LM never runs:
    it is dropped, said so, and config.json stops declaring it."""
    from safetensors.torch import load_file, save_file

    src = write_checkpoint("qwen35", tmp_path / "src", seed=3)
    tensors = load_file(str(src / "model.safetensors"))
    tensors["mtp.fc.weight"] = torch.ones(32, 64)
    save_file(tensors, str(src / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(cfg, mtp_num_hidden_layers=1)))
    job = prepare(src, tmp_path / "out", request(("mlp",)))
    assert any(n.startswith("dropped 1 MTP tensors (mtp.fc.weight") for n in job.notes)
    p = run(job)
    assert p["dropped"] == ["mtp.fc.weight"]
    assert "mtp.fc.weight" not in load_file(str(tmp_path / "out" / "model.safetensors"))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["mtp_num_hidden_layers"] == 0
    check_loads(tmp_path / "out")


def test_mask_only_keeps_shapes_and_zeroes_the_pruned_units(sources, tmp_path):
    from safetensors.torch import load_file

    src = sources["llama"]
    p = prune(src, tmp_path / "out", ("heads", "mlp"), mask_only=True)
    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "out" / "model.safetensors"))
    assert {n: t.shape for n, t in a.items()} == {n: t.shape for n, t in b.items()}
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == json.loads((src / "config.json").read_text())
    for layer in p["layers"]:
        pre = f"model.layers.{layer['index']}."
        heads = torch.zeros(4, dtype=torch.bool)
        heads[layer["heads_kept"]] = True
        o, o_src = b[pre + "self_attn.o_proj.weight"].reshape(32, 4, 8), a[pre + "self_attn.o_proj.weight"].reshape(32, 4, 8)
        assert torch.equal(o[:, heads], o_src[:, heads]) and not o[:, ~heads].any()
        channels = torch.zeros(64, dtype=torch.bool)
        channels[layer["mlp_kept"]] = True
        for name in ("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.gate_proj.bias", "mlp.up_proj.bias"):
            assert torch.equal(b[pre + name][channels], a[pre + name][channels]) and not b[pre + name][~channels].any()
        assert not b[pre + "mlp.down_proj.weight"][:, ~channels].any()
