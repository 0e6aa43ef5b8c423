#!/usr/bin/env python3
"""Compare echostats with DuckDB and pandas on the same synthetic Spotify export.

    python3 benches/compare.py [--entries 1000000] [--rounds 3] [--database-url URL ...] [--keep]

One run:
  1. builds `cargo build --release -p echostats-http` and generates an export with
     `target/release/echostats generate-sample --entries N --out DIR`;
  2. times `echostats --database-url sqlite://DIR/bench.db import DIR/export`, then
     `echostats report --period P --format json` for the 5 periods (and the same for each
     extra --database-url: postgres://..., mongodb://..., which should point at empty
     databases);
  3. DuckDB: read_json over the extended-history files plus the report's aggregates;
  4. pandas: pd.read_json per file, concat, the same aggregates;
  5. prints a table (load/import time, report time for all periods, total, peak RSS) with
     ratios, and writes it to bench-out/compare.json.

With --rounds N, steps 2-4 run N times, taking turns (echostats on a new SQLite file each
round, DuckDB, pandas), so that a machine's drift falls on every tool alike; the table
shows each tool's median run and the range of its totals, the ratios compare medians.
The extra --database-url targets are imported in the first round only (a second import
into the same database would find every entry stored already).

Every tool runs in its own child process: wall time is measured around it and peak RSS
comes from os.wait4 (the child's own rusage), so nothing external is needed. DuckDB and
pandas run in this same interpreter (a worker mode of this script) and need
`pip install -r benches/requirements.txt` (or pass --install to do it here).

The aggregates, per period (week = last 7 days, month = 30, quarter = 91, year = 365,
relative to the latest ts; all_time): counted plays (ms_played >= 30000 with a track URI,
exact duplicate rows removed), their total ms, unique tracks / artists / albums, top 10
artists / tracks / albums, plays per hour of day (UTC) and per weekday.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "benches" / "requirements.txt"
PERIODS = {"week": 7, "month": 30, "quarter": 91, "year": 365, "all_time": None}
TOP_N = 10
EXTENDED_PREFIXES = ("Streaming_History_Audio_", "endsong_")


# --------------------------------------------------------------------------------------
# Running children


class Failed(Exception):
    """A child process exited non-zero."""


def run_measured(cmd: list[str], log_dir: Path, name: str, env: dict | None = None) -> dict:
    """Runs cmd, returns wall seconds, peak RSS (MB) and the stdout path; raises Failed."""
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-15:]
        raise Failed(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n    " + "\n    ".join(tail))
    return {"seconds": wall, "peak_rss_mb": rss_mb, "stdout": out_path}


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


# --------------------------------------------------------------------------------------
# echostats


def target_dir() -> Path:
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, capture_output=True, text=True
    )
    if meta.returncode == 0:
        return Path(json.loads(meta.stdout)["target_directory"])
    return ROOT / "target"


def build() -> Path:
    step("cargo build --release -p echostats-http")
    done = subprocess.run(["cargo", "build", "--release", "-p", "echostats-http"], cwd=ROOT)
    if done.returncode != 0:
        sys.exit("error: `cargo build --release -p echostats-http` failed (see above)")
    binary = target_dir() / "release" / "echostats"
    if not binary.exists():
        sys.exit(f"error: the build did not produce {binary}")
    return binary


def generate(binary: Path, entries: int, export: Path, logs: Path) -> None:
    step(f"generating a {entries:,}-entry export in {export}")
    if export.exists():
        shutil.rmtree(export)
    cmd = [str(binary), "generate-sample", "--entries", str(entries), "--out", str(export)]
    try:
        res = run_measured(cmd, logs, "generate-sample")
    except Failed as e:
        sys.exit(
            f"error: could not generate the sample export.\n  {e}\n"
            "  Is the `generate-sample` subcommand in this build of echostats? "
            "Or pass an existing export with --export DIR."
        )
    print(f"    {res['seconds']:.1f} s, {sum(1 for _ in extended_files(export))} extended-history files")


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path}"


def bench_echostats(binary: Path, url: str, export: Path, logs: Path, label: str) -> dict:
    step(f"echostats ({label}): import")
    base = [str(binary), "--database-url", url]
    slug = label.replace("/", "_").replace(":", "_")
    imp = run_measured(base + ["import", str(export)], logs, f"echostats-{slug}-import")
    print(f"    import {imp['seconds']:.2f} s, peak {imp['peak_rss_mb']:.0f} MB")
    per_period, peak, reports = {}, imp["peak_rss_mb"], {}
    for period in PERIODS:
        rep = run_measured(
            base + ["report", "--period", period, "--format", "json"], logs, f"echostats-{slug}-report-{period}"
        )
        per_period[period] = round(rep["seconds"], 4)
        peak = max(peak, rep["peak_rss_mb"])
        try:
            reports[period] = json.loads(rep["stdout"].read_text())
        except ValueError:
            reports[period] = None
    report_s = sum(per_period.values())
    print(f"    reports {report_s:.2f} s ({', '.join(f'{p} {s:.2f}' for p, s in per_period.items())})")
    return {
        "tool": f"echostats ({label})",
        "load_s": imp["seconds"],
        "report_s": report_s,
        "report_per_period_s": per_period,
        "total_s": imp["seconds"] + report_s,
        "process_s": imp["seconds"] + report_s,
        "peak_rss_mb": peak,
        "import_peak_rss_mb": imp["peak_rss_mb"],
        "all_time_report": reports.get("all_time"),
    }


# --------------------------------------------------------------------------------------
# DuckDB and pandas (run as `compare.py --worker duckdb|pandas`, one child each)


def extended_files(export: Path) -> list[Path]:
    """The extended audio history files, wherever they sit in the export."""
    return sorted(p for p in export.rglob("*.json") if p.name.startswith(EXTENDED_PREFIXES))


def worker_duckdb(files: list[str]) -> dict:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    columns = {
        "ts": "TIMESTAMP",
        "ms_played": "BIGINT",
        "master_metadata_track_name": "VARCHAR",
        "master_metadata_album_artist_name": "VARCHAR",
        "master_metadata_album_album_name": "VARCHAR",
        "spotify_track_uri": "VARCHAR",
        "spotify_episode_uri": "VARCHAR",
    }
    con.execute(
        f"""
        CREATE TABLE plays AS
        SELECT DISTINCT ts, ms_played,
               master_metadata_track_name AS track,
               master_metadata_album_artist_name AS artist,
               master_metadata_album_album_name AS album,
               spotify_track_uri AS track_uri,
               spotify_episode_uri AS episode_uri
        FROM read_json({file_list}, format = 'array', columns = {columns!r},
                       timestampformat = '%Y-%m-%dT%H:%M:%SZ')
        """
    )
    rows = con.execute("SELECT count(*) FROM plays").fetchone()[0]
    t1 = time.perf_counter()

    latest = con.execute("SELECT max(ts) FROM plays").fetchone()[0]
    results = {}
    for period, days in PERIODS.items():
        where = "track_uri IS NOT NULL AND ms_played >= 30000"
        params: list = []
        if days is not None:
            where += " AND ts > ?::TIMESTAMP - to_days(?)"
            params = [latest, days]
        q = lambda sql: con.execute(sql.format(w=where), params).fetchall()  # noqa: E731
        plays, ms, tracks, artists, albums = q(
            "SELECT count(*), coalesce(sum(ms_played), 0), count(DISTINCT (track, artist)),"
            " count(DISTINCT artist), count(DISTINCT (album, artist)) FROM plays WHERE {w}"
        )[0]
        hours, weekdays = [0] * 24, [0] * 7
        for h, n in q("SELECT hour(ts), count(*) FROM plays WHERE {w} GROUP BY 1"):
            hours[h] = n
        for d, n in q("SELECT isodow(ts) - 1, count(*) FROM plays WHERE {w} GROUP BY 1"):
            weekdays[d] = n
        results[period] = {
            "plays": plays,
            "ms": int(ms),
            "unique_tracks": tracks,
            "unique_artists": artists,
            "unique_albums": albums,
            "top_artists": [list(r) for r in q(
                f"SELECT artist, count(*) AS n FROM plays WHERE {{w}} GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP_N}"
            )],
            "top_tracks": [list(r) for r in q(
                "SELECT track, artist, count(*) AS n FROM plays WHERE {w}"
                f" GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT {TOP_N}"
            )],
            "top_albums": [list(r) for r in q(
                "SELECT album, artist, count(*) AS n FROM plays WHERE {w}"
                f" GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT {TOP_N}"
            )],
            "hours": hours,
            "weekdays": weekdays,
        }
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "report_s": t2 - t1, "rows": rows, "results": results}


def worker_pandas(files: list[str]) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    frames = [pd.read_json(f, orient="records", dtype=False, convert_dates=False) for f in files]
    df = pd.concat(frames, ignore_index=True)
    del frames
    key = ["ts", "ms_played", "spotify_track_uri", "spotify_episode_uri", "master_metadata_track_name"]
    df = df.drop_duplicates(subset=key, ignore_index=True)
    df["ts"] = pd.to_datetime(df["ts"], format="%Y-%m-%dT%H:%M:%SZ")
    df = df.rename(
        columns={
            "master_metadata_track_name": "track",
            "master_metadata_album_artist_name": "artist",
            "master_metadata_album_album_name": "album",
        }
    )
    rows = len(df)
    t1 = time.perf_counter()

    latest = df["ts"].max()
    counted_all = df[df["spotify_track_uri"].notna() & (df["ms_played"] >= 30000)]
    results = {}

    def top(c, cols):
        g = c.groupby(cols, sort=False).size().reset_index(name="n")
        g = g.sort_values(["n", *cols], ascending=[False] + [True] * len(cols)).head(TOP_N)
        return [[*(r[c] for c in cols), int(r["n"])] for _, r in g.iterrows()]

    for period, days in PERIODS.items():
        c = counted_all if days is None else counted_all[counted_all["ts"] > latest - pd.Timedelta(days=days)]
        hours = c["ts"].dt.hour.value_counts()
        weekdays = c["ts"].dt.dayofweek.value_counts()
        results[period] = {
            "plays": int(len(c)),
            "ms": int(c["ms_played"].sum()),
            "unique_tracks": int(len(c[["track", "artist"]].drop_duplicates())),
            "unique_artists": int(c["artist"].nunique()),
            "unique_albums": int(len(c[["album", "artist"]].drop_duplicates())),
            "top_artists": top(c, ["artist"]),
            "top_tracks": top(c, ["track", "artist"]),
            "top_albums": top(c, ["album", "artist"]),
            "hours": [int(hours.get(h, 0)) for h in range(24)],
            "weekdays": [int(weekdays.get(d, 0)) for d in range(7)],
        }
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "report_s": t2 - t1, "rows": rows, "results": results}


def bench_worker(tool: str, export: Path, logs: Path) -> dict:
    step(f"{tool}: load + aggregates (own process)")
    files = [str(p) for p in extended_files(export)]
    manifest, result = logs / f"{tool}-files.json", logs / f"{tool}-result.json"
    manifest.write_text(json.dumps(files))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, str(manifest), str(result)]
    res = run_measured(cmd, logs, tool)
    out = json.loads(result.read_text())
    print(
        f"    load {out['load_s']:.2f} s, aggregates {out['report_s']:.2f} s, process {res['seconds']:.2f} s,"
        f" peak {res['peak_rss_mb']:.0f} MB, {out['rows']:,} distinct rows"
    )
    return {
        "tool": tool,
        "load_s": out["load_s"],
        "report_s": out["report_s"],
        "total_s": out["load_s"] + out["report_s"],
        "process_s": res["seconds"],
        "peak_rss_mb": res["peak_rss_mb"],
        "rows": out["rows"],
        "results": out["results"],
    }


def run_worker(tool: str, manifest: str, result: str) -> None:
    files = json.loads(Path(manifest).read_text())
    out = {"duckdb": worker_duckdb, "pandas": worker_pandas}[tool](files)
    Path(result).write_text(json.dumps(out, default=str))


# --------------------------------------------------------------------------------------
# Setup, checks, report


def missing_python_tools() -> list[str]:
    return [m for m in ("duckdb", "pandas") if importlib.util.find_spec(m) is None]


def ensure_python_tools(install: bool) -> list[str]:
    """The Python tools that can run; installs the missing ones when asked."""
    missing = missing_python_tools()
    if missing and install:
        step(f"installing {', '.join(missing)} into {sys.executable}")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-r", str(REQUIREMENTS)])
        if done.returncode != 0:
            sys.exit("error: pip install failed (see above)")
        importlib.invalidate_caches()
        missing = missing_python_tools()
    if missing:
        print(
            f"warning: {', '.join(missing)} not installed for {sys.executable}; skipping.\n"
            f"  Install with:  {sys.executable} -m pip install -r {REQUIREMENTS.relative_to(ROOT)}\n"
            "  (or rerun with --install; a venv is best: python3 -m venv .venv-bench &&"
            " .venv-bench/bin/pip install -r benches/requirements.txt)",
            file=sys.stderr,
        )
    return [t for t in ("duckdb", "pandas") if t not in missing]


def find_number(doc, names: tuple[str, ...]):
    """The first number under one of `names` anywhere in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in names and isinstance(v, (int, float)) and not isinstance(v, bool):
                return v
        for v in doc.values():
            found = find_number(v, names)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for v in doc:
            found = find_number(v, names)
            if found is not None:
                return found
    return None


def cross_check(runs: list[dict]) -> dict:
    """DuckDB and pandas must agree; echostats' all-time play count is shown beside them."""
    checks = {}
    by_tool = {r["tool"]: r for r in runs}
    if "duckdb" in by_tool and "pandas" in by_tool:
        a, b = by_tool["duckdb"]["results"], by_tool["pandas"]["results"]
        diffs = [f"{p}.{k}" for p in PERIODS for k in a[p] if a[p][k] != b[p][k]]
        checks["duckdb_equals_pandas"] = not diffs
        checks["differences"] = diffs
        print("    duckdb and pandas agree on every aggregate" if not diffs else f"    MISMATCH duckdb/pandas: {diffs}")
    reference = next((r["results"]["all_time"] for r in runs if "results" in r), None)
    for r in runs:
        if r["tool"].startswith("echostats") and reference is not None:
            plays = find_number(r.get("all_time_report"), ("total_tracks_played", "total_plays", "plays"))
            checks[f"{r['tool']} all_time plays"] = plays
            if plays is not None:
                print(f"    {r['tool']}: all-time plays {plays:,} vs {reference['plays']:,} (DuckDB/pandas, exact dedup)")
    return checks


def median_runs(rounds: list[dict]) -> list[dict]:
    """Each tool's run of median total (the lower middle one of an even count), with the
    range of its totals over the rounds and its highest peak RSS."""
    by_tool: dict[str, list[dict]] = {}
    for r in rounds:
        by_tool.setdefault(r["tool"], []).append(r)
    out = []
    for tool_runs in by_tool.values():
        ordered = sorted(tool_runs, key=lambda r: r["total_s"])
        median = dict(ordered[(len(ordered) - 1) // 2])
        median["rounds"] = len(ordered)
        median["total_range_s"] = [ordered[0]["total_s"], ordered[-1]["total_s"]]
        median["load_range_s"] = [min(r["load_s"] for r in ordered), max(r["load_s"] for r in ordered)]
        median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ordered)
        out.append(median)
    return out


def print_table(runs: list[dict], ratios: dict) -> None:
    header = (
        f"{'tool':<28}{'load/import s':>14}{'report s (5)':>14}{'total s':>10}{'process s':>11}"
        f"{'peak RSS MB':>13}{'total range s':>16}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in runs:
        lo, hi = r["total_range_s"]
        spread = f"{lo:.2f}-{hi:.2f} ({r['rounds']})"
        print(
            f"{r['tool']:<28}{r['load_s']:>14.2f}{r['report_s']:>14.2f}{r['total_s']:>10.2f}"
            f"{r['process_s']:>11.2f}{r['peak_rss_mb']:>13.0f}{spread:>16}"
        )
    print(
        "total = load + report; process = wall time of the child processes (echostats: 1 import +"
        " 5 reports;\nduckdb/pandas: one Python process, interpreter start and imports included)."
        "\nThe median run of each tool; peak RSS: the highest of its rounds; range: its totals over the rounds."
    )
    if ratios:
        print()
        for name, rat in ratios.items():
            print(
                f"{name:<40} total x{rat['total']:.2f}   load x{rat['load']:.2f}   report x{rat['report']:.2f}"
                f"   RSS x{rat['peak_rss']:.2f}"
            )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000, help="extended-history entries (default 1,000,000)")
    ap.add_argument(
        "--database-url", action="append", default=[], metavar="URL",
        help="also benchmark echostats on this (empty) database; repeatable",
    )
    ap.add_argument("--rounds", type=int, default=1, help="run every tool this many times, taking turns (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the export and databases in bench-out/work")
    ap.add_argument("--install", action="store_true", help="pip install benches/requirements.txt if needed")
    ap.add_argument("--export", type=Path, help="use this existing export instead of generating one")
    ap.add_argument("--skip-build", action="store_true", help="use the existing target/release/echostats")
    ap.add_argument("--bin", type=Path, help="use this echostats binary (implies --skip-build)")
    ap.add_argument(
        "--tools", default="echostats,duckdb,pandas", help="comma-separated subset of echostats,duckdb,pandas"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out", help="output folder (default bench-out/)")
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "MANIFEST", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(*args.worker)
        return
    if args.rounds < 1:
        sys.exit("error: --rounds must be at least 1")

    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    python_tools = ensure_python_tools(args.install) if tools & {"duckdb", "pandas"} else []
    out_dir = args.out.resolve()
    work = out_dir / "work"
    logs = work / "logs"
    if work.exists():
        shutil.rmtree(work)
    logs.mkdir(parents=True)

    need_binary = "echostats" in tools or args.export is None
    binary = None
    if need_binary:
        if args.bin is not None:
            binary = args.bin.resolve()
        elif args.skip_build:
            binary = target_dir() / "release" / "echostats"
        else:
            binary = build()
        if not binary.exists():
            sys.exit(f"error: no echostats binary at {binary}")
    if args.export is not None:
        export = args.export.resolve()
        if not extended_files(export):
            sys.exit(f"error: no Streaming_History_Audio_*.json / endsong_*.json under {export}")
    else:
        export = work / "export"
        generate(binary, args.entries, export, logs)
    entries = args.entries if args.export is None else None

    every_run: list[dict] = []
    failures: list[str] = []
    # Two URLs of one scheme get numbered labels, so their logs and rows stay apart.
    extra_targets = [(url.split(":", 1)[0], url) for url in args.database_url]
    seen: dict[str, int] = {"sqlite": 1}
    for i, (label, url) in enumerate(extra_targets):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            extra_targets[i] = (f"{label}-{seen[label]}", url)
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            step(f"round {round_no} of {args.rounds}")
        if "echostats" in tools:
            db = work / f"bench-{round_no}.db"
            targets = [("sqlite", sqlite_url(db))] + (extra_targets if round_no == 1 else [])
            for label, url in targets:
                try:
                    every_run.append(bench_echostats(binary, url, export, logs, label))
                except Failed as e:
                    failures.append(f"echostats ({label}): {e}")
                    print(f"    FAILED: {e}", file=sys.stderr)
            if not args.keep:
                for leftover in work.glob(f"{db.name}*"):
                    leftover.unlink()
        for tool in ("duckdb", "pandas"):
            if tool in tools and tool in python_tools:
                try:
                    every_run.append(bench_worker(tool, export, logs))
                except Failed as e:
                    failures.append(f"{tool}: {e}")
                    print(f"    FAILED: {e}", file=sys.stderr)
    runs = median_runs(every_run)

    step("checks")
    checks = cross_check(runs)
    ratios = {}
    for base in (r for r in runs if r["tool"].startswith("echostats")):
        for other in (r for r in runs if r["tool"] in ("duckdb", "pandas")):
            ratios[f"{other['tool']} / {base['tool']}"] = {
                "total": other["total_s"] / base["total_s"],
                "load": other["load_s"] / base["load_s"],
                "report": other["report_s"] / base["report_s"] if base["report_s"] else None,
                "peak_rss": other["peak_rss_mb"] / base["peak_rss_mb"],
            }
    print_table(runs, ratios)

    versions = {"python": platform.python_version()}
    for m in python_tools:
        versions[m] = __import__(m).__version__
    summary = {
        "entries": entries,
        "export": str(export),
        "extended_files": len(extended_files(export)),
        "export_bytes": sum(p.stat().st_size for p in export.rglob("*") if p.is_file()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions,
        "rounds": args.rounds,
        "runs": [{k: v for k, v in r.items() if k not in ("results", "all_time_report")} for r in runs],
        "every_run": [{k: v for k, v in r.items() if k not in ("results", "all_time_report")} for r in every_run],
        "ratios": ratios,
        "checks": checks,
        "failures": failures,
        "aggregates": next((r["results"] for r in runs if "results" in r), None),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out_dir / 'compare.json'}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
