"""Benchmark (not a test): import a generated 1,000,000-entry export through the Python
API, then time `history()` and its conversion to polars and pandas.

    target/release/echostats generate-sample --entries 1000000 --out /tmp/es-export
    python echostats-py/benches/to_frames.py /tmp/es-export [--db sqlite:///tmp/es-bench.db]

Without an export folder it runs the generator itself (needs the release CLI: pass
--cli or build it with `cargo build --release -p echostats-http`).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import echostats

ROOT = pathlib.Path(__file__).resolve().parents[2]


def timed(label: str, fn, repeat: int = 1):
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<34} {best:8.3f} s" + (f"  (best of {repeat})" if repeat > 1 else ""), flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", nargs="?", type=pathlib.Path, help="generated export folder")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--db", help="store URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "echostats"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="echostats-bench-"))
    export = args.export
    if export is None:
        export = tmp / "export"
        cmd = [args.cli, "generate-sample", "--entries", str(args.entries), "--out", str(export)]
        timed("generate-sample", lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))
    url = args.db or f"sqlite://{tmp / 'bench.db'}"
    print(f"echostats {echostats.__version__}, store {url}, export {export}")

    store = echostats.open(url)
    summary = timed("import_export", lambda: store.import_export(export))
    print(f"  {summary!r}")

    table = timed("history() -> Arrow (Rust)", store.history, args.repeat)
    print(f"  {table.num_rows:,} rows x {len(table.column_names)} columns")
    import pandas  # noqa: F401  (import cost not timed)
    import polars  # noqa: F401
    import pyarrow  # noqa: F401

    timed("table.to_pyarrow()", table.to_pyarrow, args.repeat)
    df_pl = timed("table.to_polars()", table.to_polars, args.repeat)
    df_pd = timed("table.to_pandas()", table.to_pandas, args.repeat)
    timed("history().to_polars() end to end", lambda: store.history().to_polars(), args.repeat)
    timed("history().to_pandas() end to end", lambda: store.history().to_pandas(), args.repeat)
    assert df_pl.height == len(df_pd) == table.num_rows
    return 0


if __name__ == "__main__":
    sys.exit(main())
