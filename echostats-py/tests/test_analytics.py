from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import shutil
import subprocess

import pytest

import echostats

PERIODS = ["week", "month", "quarter", "year", "all_time"]


def test_overview_fields(loaded):
    store, _ = loaded
    o = store.overview("all_time", tz="Europe/Berlin")
    assert isinstance(o, echostats.Overview)
    assert o.period == "all_time" and o.timezone == "Europe/Berlin"
    assert o.total_tracks_played > 0
    assert o.total_hours == round(o.total_ms_played / 3_600_000, 1)
    assert o.unique_artists > 0 and o.unique_tracks >= o.unique_artists
    assert len(o.hourly_distribution) == 24
    assert [h.hour for h in o.hourly_distribution] == list(range(24))
    assert sum(h.plays for h in o.hourly_distribution) == o.total_tracks_played
    assert [d.day for d in o.daily_distribution][0] == "Monday"
    assert sum(d.plays for d in o.daily_distribution) == o.total_tracks_played
    assert 0 < len(o.top_artists) <= 10
    assert all(isinstance(e, echostats.TopEntry) for e in o.top_artists)
    assert [e.rank for e in o.top_artists] == list(range(1, len(o.top_artists) + 1))
    assert isinstance(o.computed_at, dt.datetime) and o.computed_at.tzinfo is not None
    assert o.listening_streak_days >= 1


def test_overview_to_dict(loaded):
    store, _ = loaded
    o = store.overview("all_time")
    d = o.to_dict()
    assert d["total_tracks_played"] == o.total_tracks_played
    assert d["top_artists"][0]["name"] == o.top_artists[0].name
    assert isinstance(d["hourly_distribution"][0], dict)
    with pytest.raises(dataclasses_frozen_error()):
        o.total_hours = 1.0  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_overview_all_periods_and_top_limit(loaded):
    store, _ = loaded
    totals = [store.overview(p).total_tracks_played for p in PERIODS]
    assert totals == sorted(totals), "longer periods hold at least as many plays"
    assert len(store.overview("all_time", top_limit=3).top_tracks) == 3


def test_overview_matches_cli_report(loaded, tmp_path, sample_export):
    """The numbers are the Rust engine's: same as `echostats report --format json`."""
    cli = os.environ.get("ECHOSTATS_CLI") or shutil.which("echostats")
    default = pathlib.Path(__file__).resolve().parents[2] / "target" / "release" / "echostats"
    if not cli and default.is_file():
        cli = str(default)
    if not cli:
        if os.environ.get("ECHOSTATS_REQUIRE_CLI"):
            pytest.fail("ECHOSTATS_REQUIRE_CLI is set but no echostats CLI was found (set ECHOSTATS_CLI)")
        pytest.skip("echostats CLI not built (set ECHOSTATS_CLI)")
    url = f"sqlite://{tmp_path / 'cli.db'}"
    echostats.open(url).import_export(sample_export)
    out = subprocess.run(
        [cli, "--database-url", url, "report", "--format", "json", "--tz", "Europe/Berlin"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = json.loads(out)
    got = echostats.open(url).overview("all_time", tz="Europe/Berlin").to_dict()
    for key in [
        "total_tracks_played",
        "total_ms_played",
        "total_hours",
        "unique_tracks",
        "unique_artists",
        "unique_albums",
        "listening_streak_days",
    ]:
        assert got[key] == expected[key], key
    assert [e["name"] for e in got["top_artists"]] == [e["name"] for e in expected["top_artists"]]
    assert got["hourly_distribution"] == expected["hourly_distribution"]


def test_top_artists_and_tracks(loaded):
    store, _ = loaded
    o = store.overview("all_time")
    artists = store.top_artists("all_time", limit=5)
    assert [a.name for a in artists] == [a.name for a in o.top_artists[:5]]
    assert [a.play_count for a in artists] == sorted((a.play_count for a in artists), reverse=True)
    tracks = store.top_tracks(period="all_time", limit=7)
    assert len(tracks) == 7
    assert tracks[0].name == o.top_tracks[0].name
    assert tracks[0].artist_name
    albums = store.top_albums("all_time", limit=2)
    assert len(albums) == 2
    assert tracks[0].to_dict()["rank"] == 1


def test_trend(loaded):
    store, _ = loaded
    o = store.overview("all_time")
    t = store.trend("all_time", tz="UTC")
    assert isinstance(t, echostats.Table)
    assert t.column_names == ["label", "plays", "ms", "hours"]
    pt = t.to_pyarrow()
    assert sum(pt.column("plays").to_pylist()) == o.total_tracks_played
    assert sum(pt.column("ms").to_pylist()) == o.total_ms_played
    labels = pt.column("label").to_pylist()
    assert labels == sorted(labels) and len(labels[0]) == 7  # YYYY-MM
    week = store.trend("week").to_pyarrow()
    assert week.num_rows in (7, 8)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.overview("decade"),
        lambda s: s.overview("year", tz="Mars/Olympus"),
        lambda s: s.top_artists("fortnight"),
        lambda s: s.top_tracks("year", limit=0),
        lambda s: s.trend("year", tz="Not/AZone"),
        lambda s: s.trend("yearly"),
    ],
)
def test_bad_period_or_tz_is_invalid_input(loaded, call):
    store, _ = loaded
    with pytest.raises(echostats.InvalidInputError) as info:
        call(store)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, echostats.EchostatsError)


def test_unknown_user_is_not_found(loaded):
    store, _ = loaded
    for call in (
        lambda: store.overview("all_time", user="ghost"),
        lambda: store.top_artists(user="ghost"),
        lambda: store.trend(user="ghost"),
    ):
        with pytest.raises(echostats.NotFoundError):
            call()
