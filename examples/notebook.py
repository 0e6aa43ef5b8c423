# %% [markdown]
# # Your listening, in a notebook
#
# A walk through the Python API of EchoStats on the bundled sample export: import it into
# a SQLite store, take the history as a pandas DataFrame, and look at
#
# 1. listening by hour of day,
# 2. the top artists of each year,
# 3. a streak calendar: plays per day, and the longest run of days with a play.
#
# Runs top to bottom as a script or cell by cell as a notebook (VS Code, or Jupyter via
# Jupytext):
#
# ```sh
# pip install './echostats-py[notebook]'    # echostats + pandas, pyarrow, matplotlib
# python examples/notebook.py               # PNGs and a CSV land in bench-out/notebook/
# ```
#
# Environment: `ECHOSTATS_NOTEBOOK_OUT` (output folder, default `bench-out/notebook/`),
# `ECHOSTATS_EXPORT` (your own export: a folder or `my_spotify_data.zip`; default the
# sample), `ECHOSTATS_TZ` (IANA zone for hours and days, default `Europe/Berlin`).

# %%
from __future__ import annotations

import os
import pathlib
import sys
import tempfile

import matplotlib

# As a script, figures are only written to files; in a notebook they are also shown.
INTERACTIVE = "ipykernel" in sys.modules or hasattr(sys, "ps1")
if not INTERACTIVE and "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle

import echostats


def repo_root() -> pathlib.Path:
    """The workspace root: next to this file as a script; found from the working
    directory in a notebook kernel, where `__file__` is not set."""
    start = pathlib.Path(__file__).resolve().parent if "__file__" in globals() else pathlib.Path.cwd()
    for folder in (start, *start.parents):
        if (folder / "tests" / "fixtures" / "sample_export").is_dir():
            return folder
    return start


ROOT = repo_root()
EXPORT = pathlib.Path(os.environ.get("ECHOSTATS_EXPORT") or ROOT / "tests" / "fixtures" / "sample_export")
OUT = pathlib.Path(os.environ.get("ECHOSTATS_NOTEBOOK_OUT") or ROOT / "bench-out" / "notebook")
OUT.mkdir(parents=True, exist_ok=True)
TZ = os.environ.get("ECHOSTATS_TZ", "Europe/Berlin")
# Spotify's 30 seconds: the import's default `--min-play-ms` (README, "Play rules").
MIN_PLAY_MS = 30_000


def finish(fig: plt.Figure, name: str) -> pathlib.Path:
    """Saves `fig` as OUT/name, shows it in a notebook, closes it in a script."""
    path = OUT / name
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")
    if INTERACTIVE:
        plt.show()
    else:
        plt.close(fig)
    return path


# %% [markdown]
# ## Import into a store
#
# A fresh SQLite file in a temporary folder; `sqlite://echostats.db` or `postgres://...`
# work the same. Importing the same export again adds nothing (the duplicate rule).

# %%
db_dir = tempfile.TemporaryDirectory(prefix="echostats-notebook-", ignore_cleanup_errors=True)
store = echostats.open(f"sqlite://{pathlib.Path(db_dir.name) / 'echostats.db'}")
summary = store.import_export(EXPORT)
print(summary)
for failed in summary.failed:  # each file is its own transaction; the others still land
    print(f"  failed: {failed.file}: {failed.reason}")

# %% [markdown]
# ## The history as a DataFrame
#
# `history()` returns an Arrow table built in Rust; `.to_pandas()` (or `.to_polars()`)
# converts it without a Python loop over rows. One row per stored entry, oldest first:
# tracks, podcast episodes, audiobook chapters and entries without metadata, short ones
# included. `played_at` is the end of the play, in UTC.

# %%
history = store.history().to_pandas()
print(f"{len(history):,} entries, columns: {', '.join(history.columns)}")
print(history["kind"].value_counts().to_string())

# The play rule: a counted play is a music entry (kind "track": a spotify:track: URI, or
# a track and artist name in account data) with ms_played >= 30000. Podcast episodes,
# audiobook chapters, entries without metadata ("unknown") and shorter plays are stored
# but never count. Every figure below uses counted plays only, as the Rust analytics do.
# In polars: store.history().to_polars().filter((pl.col("kind") == "track") & (pl.col("ms_played") >= MIN_PLAY_MS))
plays = history[(history["kind"] == "track") & (history["ms_played"] >= MIN_PLAY_MS)].copy()
plays["local"] = plays["played_at"].dt.tz_convert(TZ)
plays["year"] = plays["local"].dt.year
plays["hour"] = plays["local"].dt.hour
plays["day"] = plays["local"].dt.tz_localize(None).dt.normalize()
# Artists group case- and space-insensitively (same names, different spelling = one artist).
plays["artist_key"] = plays["artist_name"].str.lower().str.split().str.join(" ")

overview = store.overview("all_time", tz=TZ)
print(
    f"{len(plays):,} counted plays, {plays['ms_played'].sum() / 3_600_000:,.1f} hours "
    f"(overview: {overview.total_tracks_played:,} plays, {overview.total_hours:,.1f} hours)"
)
assert len(plays) == overview.total_tracks_played, "the DataFrame and the store disagree on the play rule"

# %% [markdown]
# ## Listening by hour of day
#
# Counted plays per local hour, split into weekdays and weekends, as the average per day
# of that kind (a Monday-to-Friday habit and a weekend habit have different shapes).

# %%
weekend = plays["local"].dt.day_of_week >= 5
days_of_kind = plays.groupby(weekend)["day"].nunique()
per_hour = (
    plays.groupby([weekend.rename("weekend"), "hour"]).size().unstack("weekend", fill_value=0)
    .reindex(range(24), fill_value=0)
    .reindex(columns=[False, True], fill_value=0)
)
# The per-hour counts match the store's own distribution (computed from rollups).
assert per_hour.sum(axis=1).tolist() == [p.plays for p in overview.hourly_distribution]
per_day = per_hour / days_of_kind.reindex([False, True]).replace(0, np.nan).to_numpy()

fig, ax = plt.subplots(figsize=(10, 4))
hours = np.arange(24)
ax.bar(hours - 0.2, per_day[False], width=0.4, label=f"weekdays ({days_of_kind.get(False, 0)} days with plays)")
ax.bar(hours + 0.2, per_day[True], width=0.4, label=f"weekends ({days_of_kind.get(True, 0)} days with plays)")
ax.set_xticks(hours, [f"{h:02d}" for h in hours])
ax.set_xlabel(f"hour of day ({TZ})")
ax.set_ylabel("plays per active day")
peak = int(per_hour.sum(axis=1).idxmax())
ax.set_title(f"When you listen: {len(plays):,} plays, busiest hour {peak:02d}:00–{peak + 1:02d}:00")
ax.legend(frameon=False)
ax.spines[["top", "right"]].set_visible(False)
finish(fig, "listening_by_hour.png")

# %% [markdown]
# ## Top artists per year
#
# Ranked as EchoStats ranks: more plays first, then more listening time, then name. The
# artist is the album artist of the export. The all-time top five is checked against
# `store.top_artists("all_time")`.

# %%
TOP_N = 5
by_artist = (
    plays.groupby(["year", "artist_key"])
    .agg(
        artist=("artist_name", lambda s: s.mode().iat[0]),  # most frequent spelling
        plays=("ms_played", "size"),
        ms=("ms_played", "sum"),
    )
    .reset_index()
)
by_artist["hours"] = (by_artist["ms"] / 3_600_000).round(1)
by_artist["share"] = by_artist["plays"] / by_artist.groupby("year")["plays"].transform("sum")
top_per_year = (
    by_artist.sort_values(["year", "plays", "ms", "artist_key"], ascending=[True, False, False, True])
    .groupby("year")
    .head(TOP_N)
    .assign(rank=lambda t: t.groupby("year").cumcount() + 1)
    .set_index(["year", "rank"])[["artist", "plays", "hours", "share"]]
)
print(top_per_year.to_string(formatters={"share": "{:.1%}".format}))
top_per_year.to_csv(OUT / "top_artists_per_year.csv")

all_time = (
    by_artist.groupby("artist_key")
    .agg(artist=("artist", "first"), plays=("plays", "sum"), ms=("ms", "sum"))
    .sort_values(["plays", "ms", "artist_key"], ascending=[False, False, True])
    .head(TOP_N)
)
from_store = store.top_artists("all_time", limit=TOP_N)
assert [(e.play_count, e.total_ms) for e in from_store] == list(zip(all_time["plays"], all_time["ms"]))
print("all time:", ", ".join(f"{e.name} ({e.play_count})" for e in from_store))

# %% [markdown]
# ## Streak calendar
#
# One row per year: weeks (columns) × weekdays (rows), each day coloured by its counted
# plays. The longest streak is the longest run of consecutive local days with at least
# one play; outlined in red, and compared with the store's `listening_streak_days`.

# %%
per_day_plays = plays.groupby("day").size()
active_days = per_day_plays.index  # sorted, one entry per day with a play

# Consecutive days share a run id: a new run starts wherever the gap is not one day.
run_id = (active_days.to_series().diff() != pd.Timedelta(days=1)).cumsum()
run_length = run_id.map(run_id.value_counts())
longest = int(run_length.max()) if len(run_length) else 0
streak_days = active_days[run_length.to_numpy() == longest][:longest] if longest else active_days[:0]
print(
    f"longest streak: {longest} days"
    + (f" ({streak_days[0]:%Y-%m-%d} to {streak_days[-1]:%Y-%m-%d})" if longest else "")
    + f"; store.overview('all_time').listening_streak_days = {overview.listening_streak_days}"
)
assert longest == overview.listening_streak_days

years = sorted(plays["year"].unique())
vmax = max(int(per_day_plays.quantile(0.98)), 1)  # a few huge days should not wash out the rest
# Greens without its near-white end, so a day with one play stands out from a day with none.
cmap = ListedColormap(plt.get_cmap("Greens")(np.linspace(0.25, 1.0, 256)))
cmap.set_under("#ebedf0")  # days of the year without a play
cmap.set_bad("none")  # cells before 1 January and after 31 December
fig, axes = plt.subplots(len(years), 1, figsize=(13, 1.8 * len(years) + 0.6), squeeze=False, layout="constrained")
for ax, year in zip(axes[:, 0], years):
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    counts = per_day_plays.reindex(days, fill_value=0).to_numpy()
    weekday = days.day_of_week.to_numpy()  # 0 = Monday
    week = (days.day_of_year.to_numpy() - 1 + days[0].day_of_week) // 7
    grid = np.full((7, week.max() + 1), np.nan)
    grid[weekday, week] = counts
    # vmin 0.5: a day without a play (0) takes the "under" colour, one play already shows green.
    image = ax.imshow(grid, cmap=cmap, vmin=0.5, vmax=vmax, aspect="equal", interpolation="none")
    in_year = streak_days[streak_days.year == year]
    for d in in_year:
        w = (d.day_of_year - 1 + days[0].day_of_week) // 7
        ax.add_patch(Rectangle((w - 0.5, d.day_of_week - 0.5), 1, 1, fill=False, edgecolor="crimson", lw=1.2))
    month_starts = pd.date_range(f"{year}-01-01", periods=12, freq="MS")
    ax.set_xticks((month_starts.day_of_year - 1 + days[0].day_of_week) // 7, month_starts.strftime("%b"))
    ax.set_yticks([0, 2, 4, 6], ["Mon", "Wed", "Fri", "Sun"])
    ax.tick_params(length=0, labelsize=8)
    ax.set_frame_on(False)
    active = int((counts > 0).sum())
    ax.set_title(f"{year}: {int(counts.sum()):,} plays on {active} days", loc="left", fontsize=10)
fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.6, label="plays per day")
fig.suptitle(
    f"Streak calendar ({TZ}): longest streak {longest} days"
    + (f", {streak_days[0]:%d %b %Y} – {streak_days[-1]:%d %b %Y} (outlined)" if longest else ""),
    x=0.05, ha="left",
)
finish(fig, "streak_calendar.png")

# %%
del store  # closes the SQLite file, so the temporary folder can go (Windows holds open files)
db_dir.cleanup()
