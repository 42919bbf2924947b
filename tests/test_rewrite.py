"""Structure of rewritten files: bytes, names, metadata, kinds, errors.
(Numerical equivalence with llama.cpp is in test_equivalence.py.)"""

import os

import gguf
import numpy as np
import pytest

from support import tiny_models
from rys.core import gguf_file
from rys.surgery import rewrite
from rys.core.errors import RysError
from rys.core.model import load

RAW_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_K", "Q4_K", "Q6_K", "Q2_K", "IQ4_XS", "IQ2_XXS", "IQ3_S", "TQ2_0", "MXFP4"]


def _bytes(path, name):
    r = gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == name)
    return t.tensor_type, np.array(t.data).tobytes()


@pytest.fixture(scope="module")
def raw_types(tiny_dir):
    return tiny_models.write_raw_types_model(tiny_dir / "raw_types.gguf", RAW_TYPES)


def test_tensor_bytes_are_copied_verbatim_for_every_type(raw_types, tmp_path):
    out = rewrite.build(raw_types, "1-3,4", tmp_path / "o.gguf").out
    path = [0, 1, 2, 3, 1, 2, 3, 4, 4, 5]
    src, dst = gguf.GGUFReader(raw_types), gguf.GGUFReader(out)
    src_t = {t.name: t for t in src.tensors}
    names = [t.name for t in dst.tensors]
    assert len(names) == 1 + len(path) * len(RAW_TYPES)
    for k, i in enumerate(path):
        for j, tname in enumerate(RAW_TYPES):
            suffix = f"t{j}_{tname.lower()}.weight"
            a, b = src_t[f"blk.{i}.{suffix}"], next(t for t in dst.tensors if t.name == f"blk.{k}.{suffix}")
            assert b.tensor_type == a.tensor_type
            assert list(b.shape) == list(a.shape)
            assert np.array(b.data).tobytes() == np.array(a.data).tobytes()
            assert b.data_offset % 64 == 0  # the source's general.alignment is kept
    assert dst.fields["general.alignment"].parts[-1][0] == 64
    assert dst.fields["llama.test.per_layer"].contents() == [100 + i for i in path]
    assert dst.fields["llama.block_count"].contents() == len(path)


def test_identity_path_keeps_every_tensor_and_key(llama8, tmp_path):
    out = rewrite.build(llama8, "path:0-7", tmp_path / "id.gguf").out
    a, b = gguf_file.read(llama8), gguf_file.read(out)
    assert [(t.name, t.ggml_type, t.shape) for t in a.tensors] == [(t.name, t.ggml_type, t.shape) for t in b.tensors]
    for t, u in zip(a.tensors, b.tensors):
        assert _bytes(llama8, t.name) == _bytes(out, u.name)
    changed = {k for k in a.fields if a.fields[k] != b.fields[k]}
    assert changed == {"general.name"}
    assert set(b.fields) - set(a.fields) == {"rys.layer_path", "rys.spec", "rys.source.name", "rys.source.size", "rys.version", "rys.page_pad"}
    assert b.get("general.name") == "tiny-rys_path_0-7"
    assert b.get("rys.layer_path") == list(range(8))
    assert b.get("rys.source.name") == llama8.name and b.get("rys.source.size") == llama8.stat().st_size


def test_mtp_layers_stay_at_the_end(qwen8_mtp, tmp_path):
    out = rewrite.build(qwen8_mtp, "4-7", tmp_path / "mtp.gguf").out
    m = load(out)
    assert (m.n_layer_all, m.n_extra, m.n_trunk) == (13, 1, 12)
    assert m.file.get("rys.layer_path") == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8]
    assert any(t.name == "blk.12.nextn.eh_proj.weight" for t in m.layers[12])
    assert not any("nextn" in t.name for layer in m.layers[:12] for t in layer)
    assert m.kinds()[-1] == "attention"


def test_kinds_interval_kept_when_block_is_a_multiple_of_the_period(qwen8, tmp_path):
    r = rewrite.build(qwen8, "2-5", tmp_path / "a.gguf")
    assert r.plan.notes == []
    assert "qwen35.attention.recurrent_layers" not in r.plan.fields
    assert load(r.out).kinds() == load(qwen8).kinds() + ["deltanet"] * 3 + ["attention"]


def test_auto_layout_writes_the_array_and_says_so(qwen8, tmp_path):
    r = rewrite.build(qwen8, "2-4", tmp_path / "b.gguf")
    assert len(r.plan.notes) == 1 and "recurrent_layers" in r.plan.notes[0]
    src = load(qwen8).kinds()
    assert load(r.out).kinds() == [src[i] for i in r.plan.full_path]
    assert load(r.out).file.get("qwen35.attention.recurrent_layers") == [src[i] == "deltanet" for i in r.plan.full_path]


def test_interval_layout_refuses_with_nearest_blocks(qwen8, tmp_path):
    with pytest.raises(RysError) as e:
        rewrite.build(qwen8, "2-4", tmp_path / "c.gguf", layout="interval")
    msg = str(e.value)
    assert "qwen35.full_attention_interval = 4" in msg
    assert "nearest blocks that keep it: 1-4, 2-5, 0-3" in msg
    assert "--layout explicit" in msg
    assert not (tmp_path / "c.gguf").exists()


def test_explicit_layout_always_writes_the_array(gemma12, tmp_path):
    r = rewrite.build(gemma12, "0-5", tmp_path / "d.gguf", layout="explicit")
    arr = load(r.out).file.get("gemma3.attention.sliding_window_pattern")
    assert arr == [i % 6 < 5 for i in r.plan.full_path]


def test_gemma_block_of_four_needs_the_array(gemma12, tmp_path):
    with pytest.raises(RysError, match=r"gemma3.attention.sliding_window_pattern = 6.*nearest blocks that keep it: 0-5, 1-6, 2-7"):
        rewrite.build(gemma12, "2-5", tmp_path / "e.gguf", layout="interval")
    r = rewrite.build(gemma12, "2-5", tmp_path / "e.gguf")
    assert load(r.out).kinds() == [load(gemma12).kinds()[i] for i in r.plan.full_path]


def test_existing_array_is_reindexed_not_rewritten(tiny_dir, tmp_path):
    src = tiny_models.write_model(tiny_dir / "qwen_arr.gguf", "qwen35", 8, n_extra=1, explicit_kinds=True)
    r = rewrite.build(src, "5-6", tmp_path / "f.gguf", layout="interval")
    arr = load(r.out).file.get("qwen35.attention.recurrent_layers")
    kinds = load(src).kinds()
    assert arr == [kinds[i] == "deltanet" for i in r.plan.full_path]
    assert arr[-1] is False  # the MTP layer


def test_unknown_arch_with_uniform_layers_is_allowed(tiny_dir, tmp_path):
    src = tiny_dir / "mystery.gguf"
    tiny_models.write_model(src, "llama", 4)
    data = src.read_bytes().replace(b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00zzzzz")
    data = data.replace(b"llama.", b"zzzzz.")
    src.write_bytes(data)
    assert load(src).arch == "zzzzz"
    r = rewrite.build(src, "1-2", tmp_path / "g.gguf")
    assert load(r.out).n_layer_all == 6


def test_unknown_arch_with_differing_layers_is_refused(tiny_dir, tmp_path):
    src = tiny_dir / "mystery2.gguf"
    tiny_models.write_model(src, "qwen35", 4)
    src.write_bytes(src.read_bytes().replace(b"qwen35", b"qwen99"))
    with pytest.raises(RysError, match="unknown to rys"):
        rewrite.build(src, "1-2", tmp_path / "h.gguf")


def test_refuses_existing_output_without_force(llama8, tmp_path):
    out = tmp_path / "exists.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(RysError, match="exists; use --force"):
        rewrite.build(llama8, "1-2", out)
    assert out.read_bytes() == b"keep me"
    rewrite.build(llama8, "1-2", out, force=True)
    assert load(out).n_layer_all == 10


def test_interrupt_leaves_no_partial_file(llama8, tmp_path, monkeypatch):
    calls = []

    def explode(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_file, "_copy_range", explode)
    with pytest.raises(KeyboardInterrupt):
        rewrite.build(llama8, "1-2", tmp_path / "partial.gguf")
    assert calls and os.listdir(tmp_path) == []


def test_not_enough_space(llama8, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 1000))
    with pytest.raises(RysError, match="not enough free space"):
        rewrite.build(llama8, "1-2", tmp_path / "nospace.gguf")
    assert os.listdir(tmp_path) == []


def test_rewriting_a_rewrite_keeps_original_indices(llama8, tmp_path):
    first = rewrite.build(llama8, "2-3", tmp_path / "1.gguf").out
    second = rewrite.build(first, "path:0-5", tmp_path / "2.gguf").out
    assert load(second).file.get("rys.layer_path") == [0, 1, 2, 3, 2, 3]
    assert load(second).file.get("rys.source.name") == llama8.name


def test_data_section_is_page_congruent_with_the_source(raw_types, tmp_path):
    """Every tensor of the source layout keeps its offset modulo 4096 (one fast
    in-kernel copy, or a reflink); only the extra copies of 2-3 come after it."""
    r = rewrite.build(raw_types, "2-3", tmp_path / "p.gguf")
    dst = {t.name: t for t in gguf_file.read(r.out).tensors}
    moved = {p.name for p in r.plan.placements if (dst[p.name].offset - p.source.offset) % 4096}
    assert moved == {f"blk.{k}.t{j}_{t.lower()}.weight" for k in (4, 5) for j, t in enumerate(RAW_TYPES)}
    names = [p.name for p in r.plan.placements]
    assert names[-2 * len(RAW_TYPES):] == sorted(moved, key=names.index)  # the copies come last
