"""The llama.cpp that `make install` built, on the quantization types whose kernels
ggml repacks (and, on AMX CPUs, would hand to the AMX kernels of llama.cpp
#20824): the wheel and llama-server each load, run and answer sensibly.

SmolLM2-135M-Instruct ships as Q4_1; llama-quantize (built with llama-server)
requantizes it to Q4_0, Q8_0 and Q4_K_M. The Q4_1 file is the reference:
a kernel that computes garbage moves the next-token distributions by several
nats, a requantization by a fraction of one."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import requests

from rys.llamacpp import build as llama_build
from rys.core.model import load
from rys.search.prefilter import mean_kl, next_token_logprobs
from rys.search.serving.server import LlamaServer
from rys.surgery.verify import verify

# quantization: (a tensor type the file must hold, largest mean KL from the Q4_1 reference in nats)
# Measured on this model: Q8_0 0.005, Q4_K_M 0.06, Q4_0 0.33 (requantizing Q4_1 to Q4_0 loses most).
TYPES = {"Q4_1": ("Q4_1", 0.0), "Q8_0": ("Q8_0", 0.05), "Q4_K_M": ("Q4_K", 0.2), "Q4_0": ("Q4_0", 0.6)}
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def reference(smollm2):
    return next_token_logprobs(smollm2, n_threads=2)


@pytest.fixture(scope="module")
def quantized(smollm2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantized")
    files = {"Q4_1": smollm2}
    for qtype in TYPES:
        if qtype == "Q4_1":
            continue
        out = folder / f"smollm2-{qtype}.gguf"
        proc = subprocess.run([str(llama_build.tool_path("llama-quantize")), "--allow-requantize",
                               str(smollm2), str(out), qtype], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        files[qtype] = out
    return files


@pytest.mark.server
@pytest.mark.parametrize("qtype", list(TYPES))
def test_wheel_and_server_answer_on_quantized_models(quantized, reference, qtype, tmp_path):
    path = quantized[qtype]
    tensor_type, max_kl = TYPES[qtype]
    assert tensor_type in {t.type_name for t in load(path).file.tensors}

    # The wheel (llama-cpp-python, in a child process): distributions close to the reference.
    got = next_token_logprobs(path, n_threads=2)
    kl = mean_kl(reference, got)
    assert kl <= max_kl + 1e-9, f"{qtype}: mean KL {kl:.4f} nats from the Q4_1 reference"
    assert np.mean(got.argmax(axis=1) == reference.argmax(axis=1)) >= 0.5
    wheel = verify(path, prompt=PROMPT, n_tokens=8, n_threads=2)

    # llama-server, one slot: the same greedy continuation as the wheel.
    with LlamaServer(path, log_path=tmp_path / "server.log", slots=1, threads=2) as srv:
        answer = requests.post(srv.base_url + "/completion", timeout=60,
                               json={"prompt": PROMPT, "n_predict": 8, "temperature": 0}).json()["content"]
    assert answer == wheel["text"], (answer, wheel["text"])
    if qtype != "Q4_0":  # requantized twice to 4 bits, SmolLM2 no longer knows
        assert "Paris" in answer
