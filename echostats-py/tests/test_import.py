from __future__ import annotations

import dataclasses

import pytest

import echostats


def test_open_backends(db_url):
    assert echostats.open(db_url).backend == "sqlite"
    mem = echostats.open("memory://")
    assert mem.backend == "memory"
    assert "memory" in repr(mem)


def test_close_leaves_a_complete_file_and_a_clear_error(tmp_path, sample_export):
    path = tmp_path / "closed.db"
    with echostats.open(f"sqlite://{path}") as store:
        added = store.import_export(sample_export).added
        assert not store.closed
    assert store.closed
    assert "closed" in repr(store)
    # The file holds everything by itself: no log left beside it to be copied back. An
    # empty log may still be there, or vanish at any moment: SQLite deletes it when the
    # last connection's handle is let go, which sqlx's worker threads may do just after
    # close() has returned (a check for existence, then a stat, failed on that once).
    try:
        log_bytes = (tmp_path / "closed.db-wal").stat().st_size
    except FileNotFoundError:
        log_bytes = 0
    assert log_bytes == 0
    with pytest.raises(echostats.EchostatsError, match="store is closed"):
        store.overview("all_time")
    store.close()  # twice: nothing happens
    # Only the .db file, moved alone, still has every play.
    moved = tmp_path / "moved.db"
    path.rename(moved)
    with echostats.open(f"sqlite://{moved}") as again:
        assert again.history().num_rows == added


def test_open_absolute_sqlite_url(tmp_path):
    path = tmp_path / "abs.db"
    store = echostats.open(f"sqlite:///{path}")
    assert store.backend == "sqlite"


def test_import_summary(loaded):
    _, summary = loaded
    assert isinstance(summary, echostats.ImportSummary)
    assert summary.added > 0
    assert summary.entries == sum(summary.entries_by_kind.values())
    assert set(summary.entries_by_kind) <= {"track", "episode", "audiobook", "unknown"}
    assert summary.entries_by_kind.get("track", 0) > 0
    assert summary.added + summary.duplicates + summary.replaced <= summary.entries
    assert isinstance(summary.rejected, dict)
    assert summary.elapsed_s >= 0.0
    assert summary.files, "per-file reports"
    statuses = {f.status for f in summary.files}
    assert "imported" in statuses
    skipped = [f for f in summary.files if f.status == "skipped"]
    assert any("Video" in f.file for f in skipped), [repr(f) for f in summary.files]
    assert summary.failed == []
    for f in summary.files:
        assert isinstance(f, echostats.FileReport)
        if f.status == "imported":
            assert f.format in {"extended_history", "account_music", "account_podcast"}
    text = repr(summary)
    assert text.startswith("ImportSummary(") and f"added={summary.added}" in text


def test_import_summary_is_frozen(loaded):
    _, summary = loaded
    with pytest.raises(AttributeError):
        summary.added = 0  # type: ignore[misc]


def test_reimport_is_idempotent(store, sample_export):
    first = store.import_export(sample_export)
    n = store.history().num_rows
    assert n == first.added
    second = store.import_export(sample_export, user="local")
    assert second.added == 0
    assert store.history().num_rows == n


def test_import_into_memory_store_other_user(sample_export):
    store = echostats.open("memory://")
    summary = store.import_export(str(sample_export), user="alice")
    assert store.history(user="alice").num_rows == summary.added
    with pytest.raises(echostats.NotFoundError):
        store.history(user="local")


def test_import_bad_file_is_reported_not_raised(store, tmp_path):
    bad = tmp_path / "export"
    bad.mkdir()
    (bad / "endsong_0.json").write_text('[{"ts": "2022-11-01T13:39:10Z", "ms_played": 1000}, {"ts": ')
    summary = store.import_export(bad)
    assert len(summary.failed) == 1
    assert summary.failed[0].status == "failed" and summary.failed[0].reason
    assert summary.added == 0


def test_import_missing_path_raises(store, tmp_path):
    missing = tmp_path / "nope.zip"
    with pytest.raises(echostats.ImportFailedError) as info:
        store.import_export(missing)
    assert isinstance(info.value, echostats.EchostatsError)
    assert info.value.file == str(missing)
    assert info.value.entry is None


def test_summary_not_a_dataclass_but_readable(loaded):
    _, summary = loaded
    assert not dataclasses.is_dataclass(summary)
    assert "entries_by_kind" in repr(summary)
