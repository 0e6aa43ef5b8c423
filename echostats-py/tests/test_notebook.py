"""The notebook example (examples/notebook.py) runs top to bottom and writes its figures."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib", reason="the notebook example needs matplotlib (extra `notebook`)")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "examples" / "notebook.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_notebook_example_writes_its_figures(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "ECHOSTATS_NOTEBOOK_OUT": str(out),
        # The defaults: the bundled sample export, Berlin time.
        "ECHOSTATS_EXPORT": "",
        "ECHOSTATS_TZ": "Europe/Berlin",
    }
    run = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        cwd=tmp_path,  # the example finds the repository from its own path, not the cwd
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"notebook failed:\n{run.stdout}\n{run.stderr}"

    for name in ("listening_by_hour.png", "streak_calendar.png"):
        png = out / name
        assert png.is_file(), f"{name} not written; output:\n{run.stdout}"
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, f"{name} is not a real PNG"
    assert (out / "top_artists_per_year.csv").is_file()
    # The notebook checks its numbers against the store (asserts) and prints the streak.
    assert "longest streak: 29 days" in run.stdout
