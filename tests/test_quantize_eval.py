"""`rys quantize` (llama-quantize, its fallbacks stated) and `rys eval`
(llama-perplexity: perplexity, KL(base || candidate), same top token)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner

from rys.core import gguf_file
from rys.llamacpp import tools as llama_tools
from rys.cli import cli
from rys.core.errors import RysError
from rys.checkpoint.perplexity import parse_kl
from rys.checkpoint.quantize import quant_types, read_fallbacks
from support.llama_ref import TOKENS, llama_logits


def rys(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def types_of(path) -> set[str]:
    return {t.type_name for t in gguf_file.read(path).tensors}


def test_types_are_the_ones_llama_quantize_lists():
    types = quant_types()
    assert {"Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "COPY"} <= set(types)
    assert all(t.isupper() and " " not in t for t in types)


def test_quantize_q8_0_loads_and_stays_close(llama8, tmp_path):
    out = tmp_path / "q8.gguf"
    r = rys("quantize", llama8, out, "q8_0")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{out}\n" and r.stderr.startswith("Q8_0: ") and "note:" not in r.stderr
    assert types_of(out) == {"F32", "Q8_0"}  # norms stay f32
    ref, got = llama_logits(llama8, TOKENS), llama_logits(out, TOKENS)
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.9  # a near tie may flip on another CPU's kernels
    assert np.abs(ref - got).max() < 0.25  # Q8_0 weights and activations: measured 0.11 on logits ~2


def test_k_quant_fallbacks_are_stated(llama8, tmp_path):
    """The tiny model is 64 wide (128 in ffn_down): no row is a multiple of 256, so no
    tensor can be a K-quant; 57 fall back (7 per layer and the embedding; output.weight
    is Q8_0 in this mix anyway)."""
    out = tmp_path / "q4km.gguf"
    out.write_bytes(b"an older file")
    r = rys("quantize", llama8, out, "Q4_K_M", "--force")
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    n = len(gguf_file.read(llama8).tensors)
    assert notes[0] == (f"note: 57 of {n} tensors fell back from the type Q4_K_M wanted for them: llama-quantize "
                        f"does so where a row is not a multiple of the type's block (256 for K-quants)")
    assert "note: 8 x attn_q.weight: q4_K -> q5_0 (rows of 64, not a multiple of 256)" in notes
    assert not {"Q4_K", "Q6_K"} & types_of(out)
    assert llama_logits(out, TOKENS).shape == (len(TOKENS), 259)


def test_fallback_warnings_are_grouped():
    text = "\n".join([
        "warning: blk.0.attn_k.weight                  - ncols    576 not divisible by 256 (required for type    q4_K)"
        " -> falling back to    q5_0",
        "warning: blk.1.attn_k.weight                  - ncols    576 not divisible by 256 (required for type    q4_K)"
        " -> falling back to    q5_0",
        "warning: blk.0.ffn_down.weight                - ncols   7808 not divisible by 256 (required for type    q6_K)"
        " -> falling back to    q8_0",
    ])
    groups = read_fallbacks(text)
    assert [g.describe() for g in groups] == [
        "2 x attn_k.weight: q4_K -> q5_0 (rows of 576, not a multiple of 256)",
        "1 x ffn_down.weight: q6_K -> q8_0 (rows of 7808, not a multiple of 256)",
    ]


# The end of a real `llama-perplexity --kl-divergence` run (SmolLM2 Q4_1 vs Q4_K_M, 4 chunks).
KL_OUTPUT = """\
0.00.166.975 I kl_divergence: computing over 4 chunks, n_ctx=512, batch_size=2048, n_seq=4
0.02.568.585 I kl_divergence: 2.40 seconds per pass - ETA 0.03 minutes

chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p
   1      13.0526 ±    2.4827      -0.00106 ±    0.02420       0.05987 ±    0.00668     7.414 ±  0.965 %    87.451 ±  2.079 %

====== Perplexity statistics ======
Mean PPL(Q)                   :  23.621930 ±   2.371414
Mean PPL(base)                :  22.832196 ±   2.280857
Cor(ln(PPL(Q)), ln(PPL(base))):  99.27%
Mean ln(PPL(Q)/PPL(base))     :   0.034004 ±   0.012147
Mean PPL(Q)/PPL(base)         :   1.034589 ±   0.012567

====== KL divergence statistics ======
Mean    KLD:   0.057878 ±   0.002471
Maximum KLD:   1.128097
99.9%   KLD:   0.820674
99.0%   KLD:   0.356741
Median  KLD:   0.039942
Minimum KLD:   0.000002

====== Token probability statistics ======
Mean    Δp: -0.625 ± 0.176 %
99.0%   Δp: 13.858%
RMS Δp    :  5.663 ± 0.425 %
Same top p: 86.569 ± 1.068 %
"""


def test_kl_output_is_read_by_its_labels(tmp_path):
    stats = parse_kl(KL_OUTPUT, "llama-perplexity", tmp_path / "x.log")
    assert stats == {
        "chunks": 4, "ctx": 512, "ppl_candidate": 23.62193, "ppl_candidate_err": 2.371414, "kld_mean": 0.057878,
        "kld_mean_err": 0.002471, "kld_p99": 0.356741, "kld_median": 0.039942, "kld_max": 1.128097,
        "same_top": pytest.approx(0.86569), "same_top_err": pytest.approx(0.01068),
    }


def test_kl_output_without_a_figure_is_an_error_naming_the_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("0.00.012.150 E kl_divergence: inconsistent vocabulary (259 vs 49152)\n")
    text = KL_OUTPUT.replace("Same top p", "Same top token")
    with pytest.raises(RysError, match=r"printed no Same top p \(kl_divergence: inconsistent vocabulary "
                                       rf"\(259 vs 49152\)\); log: {log}"):
        parse_kl(text, "llama-perplexity", log)


# --------------------------------------------------------------------------
# SmolLM2 on wikitext-2


@pytest.fixture(scope="module")
def smollm2_q8(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("q8") / "smollm2-q8_0.gguf"
    r = rys("quantize", smollm2, out, "Q8_0", "--allow-requantize")
    assert r.exit_code == 0, r.output
    return out


def evaluate(base, cand, text, *args) -> dict:
    r = rys("eval", base, cand, "--text", text, "--json", "--threads", "1", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.slow
def test_eval_smollm2_against_its_q8_0(smollm2, smollm2_q8, datasets):
    d = evaluate(smollm2, smollm2_q8, datasets / "wikitext2" / "wiki.test.raw", "--chunks", "3")
    assert (d["chunks"], d["ctx"]) == (3, 512)
    assert 5 < d["ppl_base"] < 100 and 5 < d["ppl_candidate"] < 100
    assert abs(d["ppl_ratio"] - 1) < 0.02  # measured 0.9961
    assert 0 < d["kld_mean"] < 0.02 and d["kld_mean"] < d["kld_p99"] < d["kld_max"]  # measured 0.0058, 0.037
    assert d["same_top"] > 0.9  # measured 0.948
    assert all(v is not None for v in d.values())


@pytest.mark.slow
def test_eval_a_model_against_itself(smollm2, datasets):
    text = datasets / "wikitext2" / "wiki.test.raw"
    r = rys("eval", smollm2, smollm2, "--text", text, "--ctx", "256", "--chunks", "2", "--threads", "1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[1:]] == ["file", "perplexity", "KL(base || candidate)",
                                                            "same top token", "text"]
    assert lines[4].endswith("100.00 ± 0.00 %")
    assert lines[5].endswith("wiki.test.raw: 2 chunks of 256 tokens, the second half of each scored")
    d = evaluate(smollm2, smollm2, text, "--ctx", "256", "--chunks", "2")
    assert abs(d["kld_mean"]) < 1e-5 and d["same_top"] == 1.0
    assert d["ppl_ratio"] == pytest.approx(1, abs=1e-5)


# --------------------------------------------------------------------------
# Bad input: one line, exit 1, nothing left behind

BAD = [
    (["quantize", "{missing}", "{tmp}/o.gguf", "Q8_0"], "no such file"),
    (["quantize", "{model}", "{tmp}/o.gguf", "Q9"], "unknown quantization type 'Q9': llama-quantize accepts Q1_0,"),
    (["quantize", "{model}", "{tmp}/o.bin", "Q8_0"], "name it *.gguf, not o.bin"),
    (["quantize", "{model}", "{tmp}/existing.gguf", "Q8_0"], "existing.gguf exists; use --force"),
    (["quantize", "{q8}", "{tmp}/o.gguf", "Q4_K_M"], "is already quantized (Q8_0): quantizing it again loses"),
    (["quantize", "{text}", "{tmp}/o.gguf", "Q8_0"], "not a GGUF file"),
    (["eval", "{missing}", "{model}", "--text", "{long}"], "no such file"),
    (["eval", "{model}", "{model}", "--text", "{tmp}/none.txt"], "no such text file"),
    (["eval", "{model}", "{model}", "--text", "{text}"], "is too short: measuring with --ctx 512 needs at least"),
    (["eval", "{model}", "{model}", "--text", "{long}", "--ctx", "4"], "--ctx 4 is too small"),
    (["eval", "{model}", "{model}", "--text", "{long}", "--chunks", "0"], "--chunks 0: give at least 1"),
    (["eval", "{model}", "{model}", "--text", "{long}", "--threads", "0"], "--threads 0: give at least 1"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(args, message, llama8, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    q8 = tmp_path_factory.mktemp("q8") / "q8.gguf"
    assert rys("quantize", llama8, q8, "Q8_0").exit_code == 0
    (tmp / "t.txt").write_text("too short\n")
    (tmp / "long.txt").write_text("word " * 2000)
    (tmp / "existing.gguf").write_bytes(b"x")
    subs = {"tmp": tmp, "missing": tmp / "nope.gguf", "model": llama8, "q8": q8, "text": tmp / "t.txt",
            "long": tmp / "long.txt"}
    before = sorted(os.listdir(tmp)), sorted(os.listdir(llama8.parent))
    r = rys(*[a.format(**subs) for a in args])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert (sorted(os.listdir(tmp)), sorted(os.listdir(llama8.parent))) == before


def test_a_missing_tool_says_to_run_make_install(monkeypatch, tmp_path):
    monkeypatch.setattr(llama_tools.llama_build, "tool_path", lambda name: tmp_path / name)
    with pytest.raises(RysError, match=r"llama-quantize is not built for this machine .*: run `make install`"):
        llama_tools.tool("llama-quantize")
    monkeypatch.setattr(llama_tools.llama_build, "converter", lambda: tmp_path / "convert_hf_to_gguf.py")
    with pytest.raises(RysError, match=r"llama.cpp's converter is not in the cache .*: run `make install`"):
        llama_tools.converter()


def test_nan_uncertainties_become_null_in_json(tmp_path):
    stats = parse_kl(KL_OUTPUT.replace("2.371414", "nan"), "llama-perplexity", tmp_path / "x.log")
    assert math.isnan(stats["ppl_candidate_err"])


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOOL_TEXT = st.one_of(
    st.text(max_size=2000),
    st.lists(st.sampled_from(KL_OUTPUT.splitlines() + ["Mean    KLD:   1e999 ±   nan", "Same top p: -inf %",
                                                        "99.0%   KLD:   " + "9" * 400, "\x00\xff", ""]),
             max_size=40).map("\n".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(out=TOOL_TEXT)
def test_any_tool_output_parses_or_is_one_rys_error(out, tmp_path):
    """Whatever llama-perplexity prints (cut short, garbled, absurd numbers), the parsers
    return figures or raise RysError; they never crash."""
    assert all(f.count > 0 for f in read_fallbacks(out))
    try:
        stats = parse_kl(out, "llama-perplexity", tmp_path / "x.log")
    except RysError:
        return
    assert {"kld_mean", "kld_p99", "same_top", "chunks"} <= set(stats)
