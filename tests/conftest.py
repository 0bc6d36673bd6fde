"""Shared fixtures: the project's own sample reviews and helpers to write CSV variants of them."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = ROOT / "service" / "sample" / "shop_feedback.csv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)


@pytest.fixture
def service_env(tmp_path, monkeypatch):
    """Embedded settings (SQLite, filesystem broker) under a temporary data folder, migrated."""
    from service.settings import get_settings
    from service.storage.session import upgrade_database

    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path / "data"))
    for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "MAX_UPLOAD_BYTES", "GPU_QUEUE"):
        monkeypatch.delenv(f"FEEDBACK_THEMES_{name}", raising=False)
    get_settings.cache_clear()
    upgrade_database()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def client(service_env):
    """An in-process API client over ``service_env``."""
    from tests.api_helpers import make_client

    return make_client()


@pytest.fixture
def alice(service_env) -> dict[str, str]:
    """Headers with an API key of tenant ``alice``."""
    from tests.api_helpers import new_key

    return new_key("alice")


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
