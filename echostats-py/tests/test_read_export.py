from __future__ import annotations

import pyarrow as pa
import pytest

import echostats
from test_history import COLUMNS


def test_read_export_folder(sample_export, loaded):
    _, summary = loaded
    table = echostats.read_export(sample_export)
    assert table.column_names == COLUMNS
    t = table.to_pyarrow()
    assert t.num_rows == summary.entries  # rejected rows are not records
    kinds = t.column("kind").to_pylist()
    for kind, n in summary.entries_by_kind.items():
        assert kinds.count(kind) == n
    assert t.schema.field("played_at").type == pa.timestamp("ms", tz="UTC")


def test_read_export_single_file(sample_export):
    path = sample_export / "Spotify Extended Streaming History" / "endsong_0.json"
    t = echostats.read_export(str(path)).to_pyarrow()
    assert t.num_rows > 0
    assert set(t.column("origin").to_pylist()) == {"extended_history"}


def test_read_export_bad_file_raises(tmp_path):
    bad = tmp_path / "endsong_0.json"
    bad.write_text(
        '[{"ts": "2022-11-01T13:39:10Z", "ms_played": 1000, "spotify_track_uri": "spotify:track:x",'
        ' "master_metadata_track_name": "A", "master_metadata_album_artist_name": "B"},'
        ' {"ts": 12, "ms_played": "x"}]'
    )
    with pytest.raises(echostats.ImportFailedError) as info:
        echostats.read_export(bad)
    err = info.value
    assert isinstance(err, echostats.EchostatsError)
    assert err.file == str(bad)
    assert err.entry == 1
    assert str(bad) in str(err)


def test_read_export_missing_path(tmp_path):
    with pytest.raises(echostats.ImportFailedError) as info:
        echostats.read_export(tmp_path / "missing")
    assert info.value.entry is None
