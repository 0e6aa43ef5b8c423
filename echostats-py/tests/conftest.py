from __future__ import annotations

import pathlib

import pytest

import echostats

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sample_export"


@pytest.fixture(scope="session")
def sample_export() -> pathlib.Path:
    assert SAMPLE.is_dir(), f"sample export missing at {SAMPLE}"
    return SAMPLE


@pytest.fixture
def db_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite://{tmp_path / 'echostats.db'}"


@pytest.fixture
def store(db_url: str) -> echostats.Store:
    return echostats.open(db_url)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, sample_export: pathlib.Path):
    """A SQLite store with the sample export imported for user `local` (read-only use)."""
    path = tmp_path_factory.mktemp("loaded") / "echostats.db"
    store = echostats.open(f"sqlite://{path}")
    summary = store.import_export(sample_export)
    return store, summary
