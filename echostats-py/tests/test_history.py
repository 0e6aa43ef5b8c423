from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import echostats

COLUMNS = [
    "played_at",
    "ms_played",
    "kind",
    "origin",
    "source",
    "uri",
    "track_name",
    "artist_name",
    "album_name",
    "episode_name",
    "show_name",
    "platform",
    "conn_country",
    "reason_start",
    "reason_end",
    "shuffle",
    "skipped",
    "offline",
    "incognito",
]

UTC = dt.timezone.utc


def test_history_schema_and_order(loaded):
    store, summary = loaded
    table = store.history()
    assert isinstance(table, echostats.Table)
    assert table.column_names == COLUMNS
    t = table.to_pyarrow()
    assert t.num_rows == summary.added == len(table)
    assert t.schema.field("played_at").type == pa.timestamp("ms", tz="UTC")
    assert t.schema.field("ms_played").type == pa.int64()
    assert t.schema.field("shuffle").type == pa.bool_()
    assert t.schema.field("kind").type == pa.string()
    played = t.column("played_at").to_pylist()
    assert played == sorted(played), "oldest first"
    assert set(t.column("kind").to_pylist()) <= {"track", "episode", "audiobook", "unknown"}
    assert set(t.column("source").to_pylist()) <= {"import", "api"}
    assert set(t.column("origin").to_pylist()) <= {"account_data", "extended_history", "api"}
    assert "echostats.Table(" in repr(table)


def test_history_capsule_interface(loaded):
    store, _ = loaded
    table = store.history()
    # Any PyCapsule consumer reads it directly.
    assert pa.table(table).num_rows == table.num_rows
    assert pa.schema(table).names == COLUMNS


def test_history_window(loaded):
    store, _ = loaded
    full = store.history().to_pyarrow()
    played = full.column("played_at").to_pylist()
    mid = played[len(played) // 2]
    start = mid.replace(tzinfo=UTC) if mid.tzinfo is None else mid
    after = store.history(start=start).to_pyarrow()
    before = store.history(end=start).to_pyarrow()
    assert after.num_rows + before.num_rows == full.num_rows
    assert min(after.column("played_at").to_pylist()) >= start
    end = start + dt.timedelta(days=30)
    window = store.history(start=start, end=end).to_pyarrow()
    assert all(start <= p < end for p in window.column("played_at").to_pylist())
    expected = sum(1 for p in played if start <= p < end)
    assert window.num_rows == expected


def test_history_window_in_other_zone(loaded):
    store, _ = loaded
    berlin = dt.timezone(dt.timedelta(hours=1))
    start = dt.datetime(2023, 1, 1, tzinfo=berlin)
    a = store.history(start=start).num_rows
    b = store.history(start=start.astimezone(UTC)).num_rows
    assert a == b


def test_history_artist_filter(loaded):
    store, _ = loaded
    full = store.history().to_pyarrow()
    artists = [a for a in full.column("artist_name").to_pylist() if a]
    name = max(set(artists), key=artists.count)
    rows = store.history(artist=name).to_pyarrow()
    assert rows.num_rows == artists.count(name)
    # Normalised equality: case and surrounding/inner whitespace do not matter.
    loose = "  " + name.upper().replace(" ", "   ") + " "
    assert store.history(artist=loose).num_rows == rows.num_rows
    assert store.history(artist="No Such Artist 123").num_rows == 0


def test_history_bad_arguments(loaded):
    store, _ = loaded
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(echostats.InvalidInputError):
        store.history(start=start, end=start)
    with pytest.raises(ValueError):
        store.history(start=dt.datetime(2024, 1, 1))  # naive


def test_history_unknown_user(loaded):
    store, _ = loaded
    with pytest.raises(echostats.NotFoundError) as info:
        store.history(user="nobody")
    assert isinstance(info.value, KeyError)


def test_history_empty_store_has_schema(tmp_path, sample_export):
    store = echostats.open("memory://")
    store.import_export(sample_export)
    empty = store.history(end=dt.datetime(2000, 1, 1, tzinfo=UTC))
    assert empty.num_rows == 0
    assert empty.column_names == COLUMNS
    assert empty.to_pyarrow().num_rows == 0


def test_to_pandas(loaded):
    pd = pytest.importorskip("pandas")
    store, _ = loaded
    df = store.history().to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == COLUMNS
    assert len(df) == store.history().num_rows
    assert str(df["played_at"].dt.tz) == "UTC"


def test_to_polars(loaded):
    pl = pytest.importorskip("polars")
    store, _ = loaded
    df = store.history().to_polars()
    assert isinstance(df, pl.DataFrame)
    assert df.columns == COLUMNS
    assert df.height == store.history().num_rows
    assert df.schema["played_at"] == pl.Datetime("ms", "UTC")
    assert df.schema["ms_played"] == pl.Int64


def test_missing_extra_gives_clear_import_error(loaded, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_polars(name, *args, **kwargs):
        if name == "polars" or name.startswith("polars."):
            raise ImportError("No module named 'polars'")
        return real_import(name, *args, **kwargs)

    import sys

    monkeypatch.delitem(sys.modules, "polars", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_polars)
    monkeypatch.setattr("importlib.import_module", lambda name: no_polars(name))
    store, _ = loaded
    with pytest.raises(ImportError, match=r"echostats\[polars\]"):
        store.history().to_polars()
