"""``gunguard report``: the numbers are the stored telemetry, and the PNG shows them.

The store comes from ``simulate --db`` (the same ledger as the daemon, in virtual
time). The PNG is decoded and checked pixel by pixel: at the pixel where each stored
sample should be drawn there must be the data line's colour, the limit lines must
sit at the region's limits, and the same check against shifted data must fail.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.colors import to_rgb

from gunguard.operator import report as rp
from gunguard.sim.simulate import simulate

SCENARIO = """
config: achilles-tendinopathy
duration: 40
steps:
  - {at: 1.0, region: calf-left}
  - {at: 1.5, gun: {ppm: 2200, force_n: 30}}
  - {at: 12.0, gun: {ppm: 2600}}          # over the 2400 cap: overspeed
  - {at: 14.0, gun: {ppm: 2200}}
  - {at: 15.0, reset: true}
  - {at: 16.0, region: calf-left}
  - {at: 20.0, gun: {force_n: 60}}
  - {at: 30.0, region: null}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    scenario = base / "session.yaml"
    scenario.write_text(SCENARIO)
    db = base / "history.db"
    assert simulate(scenario, config=None, as_json=True, db=str(db)) == 0
    return db


def stored_rows(db: Path) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        start, end = conn.execute(
            "SELECT start_wall, end_wall FROM treatments ORDER BY id DESC"
        ).fetchone()
        return conn.execute(
            "SELECT wall - ?, rate_ppm, force_n, power, dose FROM telemetry"
            " WHERE wall BETWEEN ? AND ? ORDER BY wall, rowid",
            (start, start - rp.PAD_S, end + rp.PAD_S),
        ).fetchall()


def hit_rate(img: np.ndarray, ax, xs, ys, color: str, radius: int = 2) -> float:
    """The share of data points at whose pixel (within ``radius``) ``color`` is drawn."""
    target = np.array(to_rgb(color))
    height = img.shape[0]
    points = ax.transData.transform(np.column_stack([xs, ys]))
    hits = 0
    for x, y in points:
        col, row = round(x), round(height - y)
        patch = img[row - radius : row + radius + 1, col - radius : col + radius + 1, :3]
        if (np.abs(patch - target).max(axis=2) < 0.2).any():
            hits += 1
    return hits / len(points)


def joined(t: list[float]) -> list[int]:
    """Indices of samples drawn as part of a line (a neighbour within GAP_S)."""
    return [
        i
        for i in range(len(t))
        if (i > 0 and t[i] - t[i - 1] <= rp.GAP_S)
        or (i + 1 < len(t) and t[i + 1] - t[i] <= rp.GAP_S)
    ]


def test_json_numbers_are_the_stored_telemetry(store, capsys):
    capsys.readouterr()
    assert rp.report_command(str(store), None, None, None, as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "gunguard-report/1"
    rows = stored_rows(store)
    samples = data["samples"]
    assert len(rows) > 200  # 10 Hz over ~30 s of activity
    assert samples["t"] == [round(r[0], 3) for r in rows]
    assert samples["rate_ppm"] == [r[1] for r in rows]
    assert samples["force_n"] == [r[2] for r in rows]
    assert samples["power"] == [bool(r[3]) for r in rows]
    assert samples["dose"] == [r[4] for r in rows]
    assert (data["kind"], data["id"]) == ("treatment", 1)
    [treatment] = data["treatments"]
    assert treatment["region"] == "calf-left"
    assert data["config"] == {
        "source": "achilles-tendinopathy",  # found by the session's config hash
        "hash": data["config"]["session_hash"],
        "session_hash": data["config"]["session_hash"],
        "matches_session": True,
    }
    assert data["limits"] == {
        "calf-left": {"cap_ppm": 2400.0, "trip_ppm": 2448.0, "max_force_n": 90.0}
    }
    assert data["dose"] == {"warning": 0.9, "limit": 1.0}
    [trip] = data["trips"]
    assert trip["reason"] == "overspeed" and trip["region"] == "calf-left"
    assert 10.0 < trip["t"] < 11.5  # 12 s into the session, first contact at ~1 s
    assert data["summary"]["max_force_n"] > 55 and data["summary"]["trips"] == ["overspeed"]
    final = [d for d in samples["dose"] if d is not None][-1]
    assert final == pytest.approx(treatment["dose"], abs=0.002)


def test_png_contains_the_plotted_data_and_limits(store, tmp_path, capsys):
    png = tmp_path / "session.png"
    assert rp.report_command(str(store), None, 1, str(png), as_json=False) == 0
    assert f"plot: {png}" in capsys.readouterr().out
    img = mpimg.imread(png)
    width, height = (round(v * rp.DPI) for v in rp.FIGSIZE_IN)
    assert img.shape == (height, width, 4)

    report = rp.load(store, 1)
    again = tmp_path / "again.png"
    fig = rp.write_plot(report, again)  # the same drawing, with its transforms
    assert np.array_equal(mpimg.imread(again), img)
    rate_ax, force_ax, dose_ax = fig.axes
    s = report.samples
    drawn = joined(s.t)
    t = np.array(s.t)[drawn]
    rate = np.array(s.rate_ppm)[drawn]
    force = np.array(s.force_n)[drawn]
    assert hit_rate(img, rate_ax, t, rate, rp.RATE_COLOR) > 0.9
    assert hit_rate(img, force_ax, t, force, rp.FORCE_COLOR) > 0.9
    dose_t = [x for x, d in zip(s.t, s.dose, strict=True) if d is not None]
    dose = [d for d in s.dose if d is not None]
    assert hit_rate(img, dose_ax, dose_t, dose, rp.DOSE_COLOR) > 0.9
    # The check can fail: the same points 10 % of the axis higher are mostly not blue.
    top = rate_ax.get_ylim()[1]
    assert hit_rate(img, rate_ax, t, rate + 0.1 * top, rp.RATE_COLOR) < 0.3

    xs = np.linspace(*rate_ax.get_xlim(), 60)[3:-3]
    assert hit_rate(img, rate_ax, xs, np.full_like(xs, 2400.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, rate_ax, xs, np.full_like(xs, 2100.0), rp.LIMIT_COLOR) < 0.1
    assert hit_rate(img, force_ax, xs, np.full_like(xs, 90.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, dose_ax, xs, np.full_like(xs, 1.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, dose_ax, xs, np.full_like(xs, 0.9), rp.WARN_COLOR) > 0.4
    trip_t = report.trips[0].t
    column = np.full(20, trip_t)
    assert hit_rate(img, force_ax, column, np.linspace(5, 120, 20), rp.TRIP_COLOR, 1) > 0.5


def test_a_config_that_is_not_the_sessions_is_labelled(store, capsys):
    assert rp.report_command(str(store), "default", None, None, as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["source"] == "default"
    assert data["config"]["matches_session"] is False
    assert data["limits"]["calf-left"]["cap_ppm"] == 3200.0  # default's: drawn, but labelled


def test_missing_store_and_unknown_treatment(store, tmp_path, capsys):
    assert rp.report_command(str(tmp_path / "none.db"), None, None, None, False) == 4
    assert "no such file" in capsys.readouterr().err
    assert rp.report_command(str(store), None, 99, None, False) == 1
    assert capsys.readouterr().err == (
        f"gunguard report: {store}: no treatment 99 (see gunguard history)\n"
    )
    assert (
        rp.report_command(str(store), None, None, None, False, session=7, whole_session=True) == 1
    )
    assert capsys.readouterr().err == f"gunguard report: {store}: no session 7\n"


def test_cli_wiring(store, tmp_path):
    from gunguard.cli import main

    png = tmp_path / "cli.png"
    assert main(["report", "--last", "--db", str(store), "--plot", str(png)]) == 0
    assert mpimg.imread(png).shape[:2] == (800, 1000)
    assert main(["report", "--session", "1", "--db", str(store), "--plot", str(png)]) == 0
    with pytest.raises(SystemExit):
        main(["report", "1", "--session", "--db", str(store)])  # one of TREATMENT, --session


def test_a_session_report_covers_every_region_and_trip(tmp_path, capsys):
    scenario = tmp_path / "two.yaml"
    scenario.write_text(
        "config: default\nduration: 20\nsteps:\n"
        "  - {at: 1.0, region: calf-left}\n"
        "  - {at: 1.0, gun: {ppm: 2600, force_n: 30}}\n"
        "  - {at: 6.0, region: forearm-left}\n"  # cap 2400 < 2600: overspeed
        "  - {at: 9.0, reset: true}\n"
        "  - {at: 10.0, region: calf-right}\n"
        "  - {at: 15.0, region: null}\n"
    )
    db = tmp_path / "h.db"
    assert simulate(scenario, config=None, as_json=True, db=str(db)) == 0
    capsys.readouterr()
    png = tmp_path / "s.png"
    assert rp.report_command(str(db), None, None, str(png), True, whole_session=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["id"]) == ("session", 1)
    assert [t["region"] for t in data["treatments"]] == ["calf-left", "forearm-left", "calf-right"]
    assert data["summary"]["trips"] == ["overspeed"]
    assert data["trips"][0]["region"] == "forearm-left"
    assert {r: v["cap_ppm"] for r, v in data["limits"].items()} == {
        "calf-left": 3200.0,
        "forearm-left": 2400.0,
        "calf-right": 3200.0,
    }
    with closing(sqlite3.connect(db)) as conn:
        stored = [r[0] for r in conn.execute("SELECT rate_ppm FROM telemetry ORDER BY wall, rowid")]
    assert data["samples"]["rate_ppm"] == stored

    report = rp.load(db, whole_session=True)
    fig = rp.write_plot(report, tmp_path / "again.png")
    img = mpimg.imread(png)
    assert np.array_equal(mpimg.imread(tmp_path / "again.png"), img)
    rate_ax, _, dose_ax = fig.axes
    s = report.samples
    drawn = joined(s.t)
    t = np.array(s.t)[drawn]
    assert hit_rate(img, rate_ax, t, np.array(s.rate_ppm)[drawn], rp.RATE_COLOR) > 0.9
    # The cap follows the armed region: 2400 while the forearm is armed, 3200 on the calves.
    forearm = [x for x, r in zip(s.t, s.region, strict=True) if r == "forearm-left"][2:-2]
    calf = [x for x, r in zip(s.t, s.region, strict=True) if r == "calf-right"][2:-2]
    assert hit_rate(img, rate_ax, forearm, np.full(len(forearm), 2400.0), rp.LIMIT_COLOR) > 0.5
    assert hit_rate(img, rate_ax, calf, np.full(len(calf), 3200.0), rp.LIMIT_COLOR) > 0.5
    assert hit_rate(img, rate_ax, calf, np.full(len(calf), 2400.0), rp.LIMIT_COLOR) < 0.1
    for i, region in enumerate(report.regions):  # one dose line per region, own colour
        points = [
            (x, d) for x, d, r in zip(s.t, s.dose, s.region, strict=True) if r == region and d
        ]
        xs, ys = zip(*points, strict=True)
        assert hit_rate(img, dose_ax, xs, ys, rp.DOSE_COLORS[i]) > 0.8
