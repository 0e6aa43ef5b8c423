from __future__ import annotations

import socket

import pytest

import echostats


def test_hierarchy():
    E = echostats.EchostatsError
    assert issubclass(E, Exception)
    for cls in (
        echostats.ImportFailedError,
        echostats.NotFoundError,
        echostats.InvalidInputError,
        echostats.NotSupportedError,
        echostats.BackendUnavailableError,
        echostats.BackendError,
    ):
        assert issubclass(cls, E), cls
        assert cls.__module__ == "echostats", cls
    assert issubclass(echostats.NotFoundError, KeyError)
    assert issubclass(echostats.InvalidInputError, ValueError)
    assert not issubclass(echostats.ImportFailedError, ImportError), "must not shadow the builtin"


def test_unknown_scheme_is_invalid_input():
    with pytest.raises(echostats.InvalidInputError, match="unsupported database URL"):
        echostats.open("redis://localhost")
    with pytest.raises(ValueError):
        echostats.open("")


def test_mongodb_goes_through_open_store():
    # Until the MongoDB store lands this is NotSupportedError; afterwards an unreachable
    # server is BackendUnavailableError. Either way it is an EchostatsError.
    with pytest.raises(echostats.EchostatsError):
        echostats.open("mongodb://127.0.0.1:1/echostats?serverSelectionTimeoutMS=500&connectTimeoutMS=500")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_postgres_is_backend_unavailable():
    port = _free_port()
    with pytest.raises(echostats.BackendUnavailableError):
        echostats.open(f"postgres://nobody@127.0.0.1:{port}/nothing")


def test_sqlite_under_a_file_is_a_backend_error(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises((echostats.BackendError, echostats.BackendUnavailableError)):
        echostats.open(f"sqlite://{tmp_path / 'afile' / 'x.db'}")


def test_catch_all(loaded):
    store, _ = loaded
    with pytest.raises(echostats.EchostatsError):
        store.overview("never")
