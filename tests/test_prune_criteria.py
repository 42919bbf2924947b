"""Importance: the criteria keep what matters, random is reproducible, and the
layer-by-layer calibration sees what the whole model sees."""

from __future__ import annotations

import hashlib

import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="5.2")

from support.hf_checkpoints import CALIB_TEXT, build_model, write_checkpoint  # noqa: E402

from rys.checkpoint.prune.calibration import SEQ_LEN, load_calibration  # noqa: E402
from rys.checkpoint.hf.folder import Checkpoint  # noqa: E402
from rys.checkpoint.prune.importance import importance  # noqa: E402
from rys.checkpoint.prune.uniform import Request, parse_amount, prepare, run  # noqa: E402
from rys.checkpoint.prune.rules import arch_of, geometry  # noqa: E402

SCALE = 8.0


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text(CALIB_TEXT)
    return path


def prune(src, out, calib, criterion, seed=0, **amounts):
    req = Request(**{k: parse_amount(v, k) for k, v in amounts.items()}, criterion=criterion, calib=calib,
                  calib_tokens=300, multiple=8, seed=seed)
    return run(prepare(src, out, req))


@pytest.fixture(scope="module")
def marked_llama(tmp_path_factory):
    """Every layer: MLP channel 5 and KV head 1 (its v rows) made clearly important."""
    model = build_model("llama", 4)
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.mlp.gate_proj, layer.mlp.up_proj):
                proj.weight[5] *= SCALE
                proj.bias[5] *= SCALE
            layer.self_attn.v_proj.weight[8:16] *= SCALE
            layer.self_attn.v_proj.bias[8:16] *= SCALE
    return write_checkpoint("llama", tmp_path_factory.mktemp("marked") / "llama", model=model)


@pytest.fixture(scope="module")
def marked_qwen35(tmp_path_factory):
    """Every DeltaNet layer: value head 2 (in key group 1) gets a large output gate z."""
    model = build_model("qwen35", 4)
    with torch.no_grad():
        for layer in model.model.layers:
            if hasattr(layer, "linear_attn"):
                layer.linear_attn.in_proj_z.weight[16:24] *= SCALE
    return write_checkpoint("qwen35", tmp_path_factory.mktemp("marked") / "qwen35", model=model)


@pytest.mark.parametrize("criterion", ["activation", "wanda", "magnitude"])
def test_criteria_keep_the_important_units(criterion, marked_llama, marked_qwen35, calib, tmp_path):
    p = prune(marked_llama, tmp_path / "llama", calib, criterion, kv_heads="1", mlp="8")
    for layer in p["layers"]:
        assert layer["kv_heads_kept"] == [1] and layer["heads_kept"] == [2, 3]
        assert 5 in layer["mlp_kept"] and len(layer["mlp_kept"]) == 8
    p = prune(marked_qwen35, tmp_path / "qwen35", calib, criterion, v_heads="0.5")
    assert [layer["v_heads_kept"][1] for layer in p["layers"] if layer["kind"] == "deltanet"] == [2, 2]


def test_random_is_seeded(marked_llama, calib, tmp_path):
    runs = [prune(marked_llama, tmp_path / f"r{i}", calib, "random", seed=s, mlp="0.5", heads="2")
            for i, s in enumerate((1, 1, 2))]
    kept = [[(layer["heads_kept"], layer["mlp_kept"]) for layer in r["layers"]] for r in runs]
    assert kept[0] == kept[1] != kept[2]
    assert runs[0]["calib"] is None and runs[0]["seed"] == 1  # random reads no calibration text


def test_provenance_records_the_calibration(marked_llama, calib, tmp_path):
    p = prune(marked_llama, tmp_path / "out", calib, "wanda", mlp="0.25")
    assert p["calib"] == {"file": str(calib), "sha256": hashlib.sha256(calib.read_bytes()).hexdigest(), "tokens": 300}
    assert p["criterion"] == "wanda"
    for layer in p["layers"]:
        for key in ("heads_kept", "kv_heads_kept", "mlp_kept"):
            assert layer[key] == sorted(layer[key])
    assert [layer["index"] for layer in p["layers"]] == [0, 1, 2]
    assert (tmp_path / "out" / "rys_prune.json").exists()


def test_importance_scores_every_unit_of_every_layer(marked_qwen35):
    ckpt = Checkpoint(marked_qwen35)
    arch = arch_of(ckpt.config)
    layers = list(importance(ckpt, arch, geometry(arch, ckpt.config), "magnitude"))
    shapes = [{u: tuple(s.shape) for u, s in layer.scores.items()} for layer in layers]
    deltanet, attention = {"v_heads": (4,), "mlp": (64,)}, {"heads": (4,), "kv_heads": (2,), "mlp": (64,)}
    assert shapes == [deltanet, attention, deltanet, attention]


@pytest.mark.parametrize("arch", ["llama", "qwen35"])
def test_layer_by_layer_activations_match_the_whole_model(arch, tmp_path, calib):
    """Activation scores from one-layer-at-a-time calibration equal the same statistic
    hooked on the whole transformers model run on the same sequences."""
    model = build_model(arch, 5)
    src = write_checkpoint(arch, tmp_path / arch, model=model)
    n_tokens = SEQ_LEN + 100  # two sequences, of two lengths
    ckpt = Checkpoint(src)
    a = arch_of(ckpt.config)
    c = load_calibration(src, calib, n_tokens)
    scores = list(importance(ckpt, a, geometry(a, ckpt.config), "activation", c))
    sums: dict[str, torch.Tensor] = {}

    def hook(key, width):
        def f(module, args):
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + x.reshape(x.shape[0], -1, width).norm(dim=-1).sum(0)
        return f

    for i, layer in enumerate(model.model.layers):
        layer.mlp.down_proj.register_forward_pre_hook(hook(f"{i}.mlp", 1))
        mixer = getattr(layer, "self_attn", None)
        if mixer is not None:
            mixer.o_proj.register_forward_pre_hook(hook(f"{i}.heads", 16 if arch == "qwen35" else 8))
        else:
            layer.linear_attn.out_proj.register_forward_pre_hook(hook(f"{i}.v_heads", 8))
    with torch.no_grad():
        for seq in c.tokens.split(SEQ_LEN):
            model(seq[None])
    for layer in scores:
        for unit in ("mlp", "heads", "v_heads"):
            if f"{layer.index}.{unit}" in sums:
                want = sums[f"{layer.index}.{unit}"] / n_tokens
                assert torch.allclose(layer.scores[unit], want, rtol=1e-4, atol=0), (layer.index, unit)
    assert len(sums) == 2 * len(scores)
