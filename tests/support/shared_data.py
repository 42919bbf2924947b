"""Where the shared data sets are: ../shared/datasets beside the repository
(never inside it), or $RYS_DATASETS."""

import os
from pathlib import Path

import pytest

DATASETS = Path(os.environ.get("RYS_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets")


@pytest.fixture
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"data sets not found at {DATASETS} (set RYS_DATASETS)")
    return DATASETS
