"""A tiny SentencePiece tokenizer that llama.cpp's convert_hf_to_gguf.py accepts.

The converter takes a BPE tokenizer.json only when it recognises its
pre-tokenizer by hashing how it splits a fixed test string (a list of known
models in conversion/base.py): a made-up byte-level tokenizer is refused
("BPE pre-tokenizer was not recognized"). A SentencePiece `tokenizer.model`
needs no such check, and llama, qwen2 and qwen3 checkpoints try it first. So
tiny checkpoints of those carry a SentencePiece BPE model trained here in
well under a second: 384 pieces, byte fallback (any text encodes), <unk> 0,
<s> 1, </s> 2. (Qwen3.5's converter only takes BPE: its tests borrow
SmolLM2's real tokenizer, whose hash the converter knows.)
"""

from __future__ import annotations

import io
from pathlib import Path

import sentencepiece as spm

N_VOCAB = 384
BOS_ID = 1
_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! This is a tiny tokenizer for tests.",
    "Numbers 0123456789 and symbols: + - * / = ( ) [ ] { }",
    "llama.cpp converts Hugging Face checkpoints to GGUF files.",
] * 5


def model_proto() -> bytes:
    """The serialized SentencePiece model (deterministic: one thread, fixed text)."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_TEXT), model_writer=out, vocab_size=N_VOCAB,
                                   model_type="bpe", byte_fallback=True, num_threads=1, minloglevel=2,
                                   unk_id=0, bos_id=BOS_ID, eos_id=2, pad_id=-1)
    return out.getvalue()


def write(folder: Path, proto: bytes) -> spm.SentencePieceProcessor:
    """Put tokenizer.model into a checkpoint folder; return a processor for encoding test text."""
    (Path(folder) / "tokenizer.model").write_bytes(proto)
    return spm.SentencePieceProcessor(model_proto=proto)
