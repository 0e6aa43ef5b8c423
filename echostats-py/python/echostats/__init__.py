"""EchoStats: self-hosted Spotify listening statistics.

>>> import echostats
>>> store = echostats.open("sqlite:///tmp/echostats.db")
>>> store.import_export("my_spotify_data.zip")
>>> df = store.history(artist="Radiohead").to_polars()
>>> store.overview("all_time", tz="Europe/Berlin").total_hours

Every call is synchronous and releases the GIL while the Rust core works.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import os
from typing import Any

from . import _echostats as _native
from ._echostats import (
    BackendError,
    BackendUnavailableError,
    EchostatsError,
    FileReport,
    ImportFailedError,
    ImportSummary,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    __version__,
)

__all__ = [
    "AudioFeatures",
    "BackendError",
    "BackendUnavailableError",
    "DayPoint",
    "EchostatsError",
    "FileReport",
    "HourPoint",
    "ImportFailedError",
    "ImportSummary",
    "InvalidInputError",
    "NotFoundError",
    "NotSupportedError",
    "Overview",
    "Store",
    "Table",
    "TopEntry",
    "__version__",
    "open",
    "read_export",
]

StrPath = str | os.PathLike[str]


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is required for this; install it with `pip install 'echostats[{extra}]'`"
        ) from e


class Table:
    """An Arrow table computed in Rust.

    Any library that reads the Arrow PyCapsule interface takes it directly
    (``pyarrow.table(t)``, ``polars.DataFrame(t)``, duckdb, ...); ``to_pyarrow()``,
    ``to_pandas()`` and ``to_polars()`` import those libraries only when called.
    """

    __slots__ = ("_table",)

    def __init__(self, table: Any) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> object:
        return self._table.__arrow_c_schema__()

    def __len__(self) -> int:
        return len(self._table)

    @property
    def num_rows(self) -> int:
        return len(self._table)

    @property
    def column_names(self) -> list[str]:
        return list(self._table.column_names)

    def to_pyarrow(self) -> Any:
        """A ``pyarrow.Table`` (needs pyarrow: extra ``pyarrow``)."""
        pa = _require("pyarrow", "pyarrow")
        return pa.table(self)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` via pyarrow (extra ``pandas``)."""
        _require("pandas", "pandas")
        _require("pyarrow", "pandas")
        return self.to_pyarrow().to_pandas()

    def to_polars(self) -> Any:
        """A ``polars.DataFrame``, zero-copy from the Arrow stream (extra ``polars``)."""
        pl = _require("polars", "polars")
        return pl.DataFrame(self)

    def __repr__(self) -> str:
        return f"echostats.Table({self.num_rows} rows: {', '.join(self.column_names)})"


@dataclasses.dataclass(frozen=True)
class TopEntry:
    """One entry of a top list."""

    rank: int
    name: str
    play_count: int
    total_ms: int
    spotify_id: str | None = None
    artist_name: str | None = None
    image_url: str | None = None

    @classmethod
    def _from(cls, d: dict[str, Any]) -> TopEntry:
        return cls(
            rank=d["rank"],
            name=d["name"],
            play_count=d["play_count"],
            total_ms=d["total_ms"],
            spotify_id=d.get("spotify_id"),
            artist_name=d.get("artist_name"),
            image_url=d.get("image_url"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class HourPoint:
    """Plays in one hour of the day (0..=23, in the requested zone)."""

    hour: int
    plays: int


@dataclasses.dataclass(frozen=True)
class DayPoint:
    """Plays on one weekday (Monday..Sunday)."""

    day: str
    plays: int


@dataclasses.dataclass(frozen=True)
class AudioFeatures:
    """Mean audio features."""

    danceability: float
    energy: float
    valence: float
    acousticness: float
    instrumentalness: float
    liveness: float
    speechiness: float
    tempo: float


@dataclasses.dataclass(frozen=True)
class Overview:
    """The analytics overview of a period (same fields as the Rust ``Overview``)."""

    period: str
    timezone: str
    total_tracks_played: int
    total_ms_played: int
    total_hours: float
    unique_tracks: int
    unique_artists: int
    unique_albums: int
    unique_genres: int
    listening_streak_days: int
    current_streak_days: int
    top_artists: list[TopEntry]
    top_tracks: list[TopEntry]
    top_albums: list[TopEntry]
    top_genres: list[TopEntry]
    hourly_distribution: list[HourPoint]
    daily_distribution: list[DayPoint]
    avg_audio_features: AudioFeatures | None
    computed_at: _dt.datetime

    @classmethod
    def _from(cls, d: dict[str, Any]) -> Overview:
        features = d.get("avg_audio_features")
        return cls(
            period=d["period"],
            timezone=d["timezone"],
            total_tracks_played=d["total_tracks_played"],
            total_ms_played=d["total_ms_played"],
            total_hours=d["total_hours"],
            unique_tracks=d["unique_tracks"],
            unique_artists=d["unique_artists"],
            unique_albums=d["unique_albums"],
            unique_genres=d["unique_genres"],
            listening_streak_days=d["listening_streak_days"],
            current_streak_days=d["current_streak_days"],
            top_artists=[TopEntry._from(e) for e in d["top_artists"]],
            top_tracks=[TopEntry._from(e) for e in d["top_tracks"]],
            top_albums=[TopEntry._from(e) for e in d["top_albums"]],
            top_genres=[TopEntry._from(e) for e in d["top_genres"]],
            hourly_distribution=[HourPoint(**p) for p in d["hourly_distribution"]],
            daily_distribution=[DayPoint(**p) for p in d["daily_distribution"]],
            avg_audio_features=AudioFeatures(**features) if features else None,
            computed_at=_dt.datetime.fromisoformat(d["computed_at"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists (``computed_at`` stays a datetime)."""
        return dataclasses.asdict(self)


class Store:
    """A store opened with :func:`open`. Not tied to a thread; calls release the GIL.

    ``close()`` it (or use ``with echostats.open(url) as store:``) when done writing:
    a SQLite file is then complete on its own, without its ``-wal`` file beside it.
    """

    __slots__ = ("_open", "_backend")

    def __init__(self, native: _native.Store) -> None:
        self._open: _native.Store | None = native
        self._backend = native.backend

    @property
    def _native(self) -> _native.Store:
        if self._open is None:
            raise EchostatsError("this store is closed; open it again with echostats.open(url)")
        return self._open

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres``, ``memory``, ..."""
        return self._backend

    @property
    def closed(self) -> bool:
        return self._open is None

    def close(self) -> None:
        """Finishes background work (a SQLite file's log checkpoint) and closes the
        connections. Later calls raise EchostatsError; closing twice does nothing."""
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._open is None else ""
        return f"<echostats.Store backend={self._backend!r}{state}>"

    def import_export(self, path: StrPath, user: str = "local") -> ImportSummary:
        """Imports a Spotify export (a .json file, a folder, or the zip as downloaded).

        Each file is atomic: a bad file is rolled back and listed in
        ``summary.failed``; the others still land. Raises ImportFailedError when the
        path itself cannot be opened.
        """
        return self._native.import_export(os.fspath(path), user)

    def history(
        self,
        user: str = "local",
        start: _dt.datetime | None = None,
        end: _dt.datetime | None = None,
        artist: str | None = None,
    ) -> Table:
        """Every stored play of ``user`` with ``start <= played_at < end``, oldest first.

        ``artist`` matches the whole artist name, case- and space-insensitively.
        Datetimes must be timezone-aware.
        """
        return Table(self._native.history(user, _aware(start, "start"), _aware(end, "end"), artist))

    def overview(self, period: str = "year", tz: str = "UTC", user: str = "local", top_limit: int = 10) -> Overview:
        """Totals, uniques, top lists, distributions and streaks of a period
        (``week``, ``month``, ``quarter``, ``year``, ``all_time``) in IANA zone ``tz``."""
        _check_limit(top_limit, "top_limit")
        return Overview._from(json.loads(self._native.overview_json(period, tz, user, top_limit)))

    def top_artists(self, period: str = "year", limit: int = 10, user: str = "local") -> list[TopEntry]:
        """Artists by counted plays in a period."""
        _check_limit(limit, "limit")
        return [TopEntry._from(e) for e in json.loads(self._native.top_artists_json(period, limit, user))]

    def top_tracks(self, period: str = "year", limit: int = 10, user: str = "local") -> list[TopEntry]:
        """Tracks by counted plays in a period."""
        _check_limit(limit, "limit")
        return [TopEntry._from(e) for e in json.loads(self._native.top_tracks_json(period, limit, user))]

    def top_albums(self, period: str = "year", limit: int = 10, user: str = "local") -> list[TopEntry]:
        """Albums by counted plays in a period."""
        _check_limit(limit, "limit")
        return [TopEntry._from(e) for e in json.loads(self._native.top_albums_json(period, limit, user))]

    def trend(self, period: str = "year", tz: str = "UTC", user: str = "local") -> Table:
        """Plays and hours per day (week, month), ISO week (quarter) or month (year,
        all_time), zero-filled: columns ``label``, ``plays``, ``ms``, ``hours``."""
        return Table(self._native.trend(period, tz, user))


def _check_limit(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"invalid input: {name} must be a positive integer, got {value!r}")


def _aware(value: _dt.datetime | None, name: str) -> _dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, _dt.datetime):
        raise InvalidInputError(f"invalid input: {name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"invalid input: {name} must be timezone-aware (e.g. tzinfo=datetime.timezone.utc)")
    return value.astimezone(_dt.timezone.utc)


def open(url: str) -> Store:  # noqa: A001 - the natural name, as in sqlite3.connect / open
    """Opens a store: ``sqlite:///abs/path.db`` or ``sqlite://relative.db`` (created on
    first use), ``postgres://user@host:5432/db``, ``memory://`` (nothing persists), and
    ``mongodb://`` once that backend lands. Raises InvalidInputError for an unknown
    scheme and BackendUnavailableError when the database cannot be reached."""
    return Store(_native.open(url))


def read_export(path: StrPath) -> Table:
    """Parses an export without a store: every record, in file order, with the same
    columns as :meth:`Store.history`. Raises ImportFailedError (with ``file`` and
    ``entry``) when a file cannot be read."""
    return Table(_native.read_export(os.fspath(path)))
