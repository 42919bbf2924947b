"""A byte-level vocabulary small enough for tiny test models.

llama.cpp's "gpt2" tokenizer maps every byte to one printable character
(the byte-level BPE alphabet) before merging. With no merges at all each
byte of the text becomes one token, so 256 tokens plus BOS/EOS can encode
any text and the model's vocabulary stays tiny. llama.cpp insists on a
non-empty merge list, so there is one merge ("h" + "e" -> "he"), giving
n_vocab = 259.
"""

from __future__ import annotations

import gguf

N_BYTES = 256
MERGED_ID = 256  # "he"
BOS_ID = 257
EOS_ID = 258
N_VOCAB = 259


def byte_alphabet() -> list[str]:
    """The character standing for each byte 0..255 in byte-level BPE.

    Printable Latin-1 bytes stand for themselves; the rest (controls, space,
    a few others) are moved to code points 256, 257, ... in byte order.
    """
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    chars, shifted = [], 0
    for b in range(N_BYTES):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(N_BYTES + shifted))
            shifted += 1
    return chars


def add_byte_vocab(writer: gguf.GGUFWriter) -> None:
    """Write tokenizer keys for the 259-token byte vocabulary."""
    tokens = byte_alphabet() + ["he", "<s>", "</s>"]
    types = [gguf.TokenType.NORMAL] * (N_BYTES + 1) + [gguf.TokenType.CONTROL] * 2
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["h e"])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(False)
