"""``gunguard report``: the numbers are the stored telemetry, and the PNG shows them.

The stores come from ``simulate --db`` (the same ledger as the daemon, in virtual
time). The PNG is decoded and checked pixel by pixel: at the pixel where each stored
sample should be drawn there must be the data line's colour, the limit lines must
sit at the region's limits, and the same check against shifted data must fail. The
power-on shading is compared with spans derived straight from the tables, and every
piece of text the figure draws is checked against every other for overlap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.colors import to_rgb
from matplotlib.text import Text

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
  - {at: 32.0, region: neck}              # refused: never_allowed
  - {at: 33.0, region: achilles-left}     # refused: not_allowed
"""
#: Issue 13's case: calf-left runs, the selection moves to forearm-left, which trips at
#: once (2600 ppm > its 2400 cap); the old plot shaded calf-left until the reset at 9 s.
SWITCH = """
config: default
duration: 20
steps:
  - {at: 1.0, region: calf-left}
  - {at: 1.0, gun: {ppm: 2600, force_n: 30}}
  - {at: 6.0, region: forearm-left}     # refused over_limit: 2600 ppm > its 2400 cap
  - {at: 9.0, reset: true}
  - {at: 10.0, region: calf-right}
  - {at: 15.0, region: null}
"""
UTC = rp.LocalTime(dt.UTC, "UTC")  # the figures under test: the same wherever they run


def simulated(base: Path, text: str) -> Path:
    scenario = base / "scenario.yaml"
    scenario.write_text(text)
    db = base / "history.db"
    assert simulate(scenario, config=None, as_json=True, db=str(db)) == 0
    return db


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return simulated(tmp_path_factory.mktemp("report"), SCENARIO)


@pytest.fixture(scope="module")
def switch(tmp_path_factory) -> Path:
    return simulated(tmp_path_factory.mktemp("switch"), SWITCH)


def stored_rows(db: Path) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        start, end, region = conn.execute(
            "SELECT start_wall, end_wall, region FROM treatments ORDER BY id DESC"
        ).fetchone()
        return conn.execute(
            "SELECT wall - ?, rate_ppm, force_n, power, dose FROM telemetry"
            " WHERE wall BETWEEN ? AND ? AND (region = ? OR region IS NULL) ORDER BY wall, rowid",
            (start, start - rp.PAD_S, end + rp.PAD_S, region),
        ).fetchall()


def xs(report: rp.Report, t) -> np.ndarray:
    """Seconds from the report's origin as the plot's x (dates)."""
    return rp.to_x(np.asarray(t, dtype=float) + report.origin_wall)


def hit_rate(img: np.ndarray, ax, x, ys, color, radius: int = 2, tol: float = 0.2) -> float:
    """The share of data points at whose pixel (within ``radius``) ``color`` is drawn."""
    target = np.array(to_rgb(color))
    height = img.shape[0]
    points = ax.transData.transform(np.column_stack([x, ys]))
    hits = 0
    for px, py in points:
        col, row = round(px), round(height - py)
        patch = img[row - radius : row + radius + 1, col - radius : col + radius + 1, :3]
        if (np.abs(patch - target).max(axis=2) < tol).any():
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
    assert trip["label"] == "T1"
    assert 10.0 < trip["t"] < 11.5  # 12 s into the session, first contact at ~1 s
    assert data["summary"]["max_force_n"] > 55 and data["summary"]["trips"] == ["overspeed"]
    final = [d for d in samples["dose"] if d is not None][-1]
    assert final == pytest.approx(treatment["dose"], abs=0.002)
    # Minutes per guidance band, by the treatment's allowance (achilles: 5 min, 2 min).
    assert [(b["label"], b["allowed_seconds"]) for b in treatment["bands"]] == [
        ("<= 2400 ppm", 300.0),
        ("> 2400 ppm", 120.0),
    ]
    assert sum(b["seconds"] for b in treatment["bands"]) == pytest.approx(
        treatment["contact_seconds"], abs=0.002
    )
    assert data["refusals"] == []  # the refusals after it are not calf-left's


def test_png_contains_the_plotted_data_and_limits(store, tmp_path, capsys):
    from gunguard.cli import main

    png = tmp_path / "treatment.png"
    assert main(["report", "1", "--db", str(store), "--plot", str(png)]) == 0
    assert f"plot: {png}" in capsys.readouterr().out
    img = mpimg.imread(png)
    report = rp.load(store, 1)
    again = tmp_path / "again.png"
    with recording_texts() as texts:
        fig = rp.write_plot(report, again)  # the same drawing, with its transforms
    assert_apart(texts, fig)
    width, height = (round(v * rp.DPI) for v in fig.get_size_inches())
    assert img.shape == (height, width, 4) and width == 1100
    assert np.array_equal(mpimg.imread(again), img)
    rate_ax, force_ax, dose_ax = fig.axes
    s = report.samples
    drawn = joined(s.t)
    t = xs(report, np.array(s.t)[drawn])
    rate = np.array(s.rate_ppm)[drawn]
    force = np.array(s.force_n)[drawn]
    assert hit_rate(img, rate_ax, t, rate, rp.RATE_COLOR) > 0.9
    assert hit_rate(img, force_ax, t, force, rp.FORCE_COLOR) > 0.9
    dose_t = xs(report, [x for x, d in zip(s.t, s.dose, strict=True) if d is not None])
    dose = [d * 100 for d in s.dose if d is not None]  # percent of the allowance
    assert hit_rate(img, dose_ax, dose_t, dose, rp.DOSE_COLOR) > 0.9
    # The check can fail: the same points 10 % of the axis higher are mostly not blue.
    top = rate_ax.get_ylim()[1]
    assert hit_rate(img, rate_ax, t, rate + 0.1 * top, rp.RATE_COLOR) < 0.3

    x = np.linspace(*rate_ax.get_xlim(), 60)[3:-3]
    assert hit_rate(img, rate_ax, x, np.full_like(x, 2400.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, rate_ax, x, np.full_like(x, 2100.0), rp.LIMIT_COLOR) < 0.1
    assert hit_rate(img, force_ax, x, np.full_like(x, 90.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, dose_ax, x, np.full_like(x, 100.0), rp.LIMIT_COLOR) > 0.4
    assert hit_rate(img, dose_ax, x, np.full_like(x, 90.0), rp.WARN_COLOR) > 0.4
    trip_x = xs(report, np.full(20, report.trips[0].wall - report.origin_wall))
    assert hit_rate(img, force_ax, trip_x, np.linspace(5, 120, 20), rp.TRIP_COLOR, 1) > 0.5


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


def test_cli_wiring(store, capsys):
    from gunguard.cli import main

    assert main(["report", "--last", "--db", str(store)]) == 0
    out = capsys.readouterr().out
    assert " % of the allowance (<= 2400 ppm " in out and " / 5:00, > 2400 ppm " in out
    assert main(["report", "--session", "1", "--db", str(store)]) == 0
    assert "refused: never_allowed, not_allowed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["report", "1", "--session", "--db", str(store)])  # one of TREATMENT, --session


# -- power on: only where the record says so ------------------------------------------------
def recorded_spans(db: Path, region: str | None, start: float, end: float) -> list[tuple]:
    """Power-on spans straight from the tables (not through the report's queries): from a
    sample with power on in the region to the next sample (at most SAMPLE_GAP_S later) of
    the same region, or to the selection change between them; never across a trip or a
    selection change of any region."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT wall, power, region FROM telemetry WHERE wall BETWEEN ? AND ?"
            " ORDER BY wall, rowid",
            (start, end),
        ).fetchall()
        cuts = [
            w
            for (w,) in conn.execute(
                "SELECT wall FROM trips UNION ALL"
                " SELECT wall FROM actions WHERE kind IN ('select', 'deselect')"
            )
        ]
    spans: list[list] = []
    for (w0, on, r0), (w1, _, r1) in itertools.pairwise(rows):
        if not on or r0 is None or (region is not None and r0 != region):
            continue
        if w1 - w0 > rp.SAMPLE_GAP_S:
            continue
        inside = [c for c in cuts if w0 < c <= w1]
        stop = min(inside) if inside else (w1 if r1 == r0 else w0)
        if stop <= w0:
            continue
        if spans and spans[-1][0] == r0 and spans[-1][2] == w0:
            spans[-1][2] = stop
        else:
            spans.append([r0, w0, stop])
    return [tuple(s) for s in spans]


def same(spans: list[rp.PowerSpan], expected: list[tuple]) -> bool:
    """The same regions, and times within a microsecond."""
    got = [(s.region, s.start, s.end) for s in spans]
    return [r for r, _, _ in got] == [r for r, _, _ in expected] and np.allclose(
        [x for _, *x in got], [x for _, *x in expected], rtol=0, atol=1e-6
    )


def assert_truthful(db: Path, spans: list[rp.PowerSpan]) -> None:
    """Inside every span each stored sample (of any region) says power on, in that region,
    and no trip or selection change happened."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT wall, power, region FROM telemetry").fetchall()
        cuts = [
            w
            for (w,) in conn.execute(
                "SELECT wall FROM trips UNION ALL"
                " SELECT wall FROM actions WHERE kind IN ('select', 'deselect')"
            )
        ]
    for span in spans:
        # (a sample taken just before a selection can share its wall time: at the start,
        # one sample says power on there)
        assert any(on and r == span.region for w, on, r in rows if w == span.start), span
        inside = [(on, r) for w, on, r in rows if span.start < w < span.end]
        assert inside and all(on and r == span.region for on, r in inside), span
        assert not [c for c in cuts if span.start < c < span.end], span


def drawn_spans(fig) -> list[list[tuple[str, float, float]]]:
    """Per plot, the power-on shading it draws: (region, x from, x to)."""
    return [
        [
            (p.get_gid().removeprefix("power-on "), p.get_x(), p.get_x() + p.get_width())
            for p in ax.patches
            if (p.get_gid() or "").startswith("power-on ")
        ]
        for ax in fig.axes
    ]


def shade_hits(img, ax, x, color) -> float:
    """The share of ``x`` at which the plot's top strip (above every line) is shaded."""
    low, high = ax.get_ylim()
    return hit_rate(img, ax, x, np.full(len(x), low + 0.96 * (high - low)), color, 1, 0.03)


def test_power_on_is_shaded_only_where_the_record_says_so(switch, tmp_path):
    with closing(sqlite3.connect(switch)) as conn:
        (moved,) = conn.execute(
            "SELECT wall FROM actions WHERE kind = 'refused' AND region = 'forearm-left'"
        ).fetchone()
        (reset,) = conn.execute(
            "SELECT wall FROM actions WHERE kind = 'select' AND region = 'calf-right'"
        ).fetchone()
    treatment = rp.load(switch, 1)
    session = rp.load(switch, whole_session=True)
    window = (treatment.start_wall - rp.PAD_S, treatment.end_wall + rp.PAD_S)
    expected = recorded_spans(switch, "calf-left", *window)
    assert same(treatment.spans, expected)
    every = recorded_spans(switch, None, session.start_wall, session.end_wall)
    assert same(session.spans, every)
    assert_truthful(switch, treatment.spans + session.spans)
    # Issue 13: calf-left's power ends where the selection moved (refused: over forearm's
    # cap), not at the next selection.
    [calf] = treatment.spans
    assert calf.end == pytest.approx(moved) and moved < reset - 2.0
    assert [s.region for s in session.spans] == ["calf-left", "calf-right"]

    for report in (treatment, session):
        png = tmp_path / f"{report.kind}.png"
        with recording_texts() as texts:
            fig = rp.write_plot(report, png, UTC)
        assert_apart(texts, fig)
        want = [(s.region, *rp.to_x([s.start, s.end])) for s in report.spans]
        for on_plot in drawn_spans(fig):  # each of the three plots shades exactly these
            assert [r for r, _, _ in on_plot] == [r for r, _, _ in want]
            assert np.allclose([x for _, *x in on_plot], [x for _, *x in want], rtol=0, atol=1e-9)
        img = mpimg.imread(png)
        force_ax = fig.axes[1]
        colors = rp.region_colors(report.regions)
        for span in report.spans:
            middle = rp.to_x(np.linspace(span.start, span.end, 7)[1:-1])
            assert shade_hits(img, force_ax, middle, rp.shade_of(colors[span.region])) == 1.0
        # Between the move and the next selection, nothing.
        gap = rp.to_x(np.linspace(moved + 0.3, reset - 0.3, 12))
        assert shade_hits(img, force_ax, gap, rp.shade_of(colors["calf-left"])) == 0.0


def test_power_spans_end_at_gaps_trips_and_region_changes():
    from gunguard.store.queries import Telemetry

    on = Telemetry(
        wall=[0.0, 0.1, 0.2, 0.3, 1.0, 1.1, 1.2, 1.3, 1.4],
        rate_ppm=[0.0] * 9,
        force_n=[0.0] * 9,
        power=[True, True, True, True, True, True, True, True, False],
        region=["a", "a", "a", "a", "a", "a", "b", "b", "b"],
        dose=[None] * 9,
    )
    spans = rp.power_spans(on, "a", cuts=[0.15, 1.15])
    # 0.15: a trip; 0.3 -> 1.0: no record; 1.15: the selection moved to b
    assert spans == [
        rp.PowerSpan("a", 0.0, 0.15),
        rp.PowerSpan("a", 0.2, 0.3),
        rp.PowerSpan("a", 1.0, 1.15),
    ]
    assert rp.power_spans(on, "b", cuts=[0.15, 1.15]) == [rp.PowerSpan("b", 1.2, 1.4)]
    # Without the recorded selection change, when the region changed is unknown: up to 1.1.
    assert rp.power_spans(on, "a", cuts=[])[-1] == rp.PowerSpan("a", 1.0, 1.1)


# -- readable at a glance -----------------------------------------------------------------
@contextmanager
def recording_texts() -> Iterator[list[tuple[str, Any]]]:
    """Every piece of text the canvas draws meanwhile, with its box in pixels."""
    drawn: list[tuple[str, Any]] = []
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self.get_text(), self.get_window_extent(renderer)))

    Text.draw = record  # type: ignore[method-assign]
    try:
        yield drawn
    finally:
        Text.draw = original  # type: ignore[method-assign]


def drawn_texts(fig) -> list[tuple[str, Any]]:
    with recording_texts() as drawn:
        fig.canvas.draw()
    return drawn


def assert_apart(texts: list[tuple[str, Any]], fig) -> None:
    """No two pieces of text overlap, and all of them are on the figure."""
    width, height = fig.canvas.get_width_height()
    assert len(texts) > 30
    for i, (text, box) in enumerate(texts):
        assert box.x0 >= -1 and box.x1 <= width + 1, text
        assert box.y0 >= -1 and box.y1 <= height + 1, text
        for other, second in texts[i + 1 :]:
            w = min(box.x1, second.x1) - max(box.x0, second.x0)
            h = min(box.y1, second.y1) - max(box.y0, second.y0)
            assert w <= 0.5 or h <= 0.5, (text, other)


@pytest.fixture(scope="module")
def session_drawn(store) -> tuple[rp.Report, Any, list[tuple[str, Any]]]:
    report = rp.load(store, whole_session=True)
    fig = rp.draw(report, UTC)
    return report, fig, drawn_texts(fig)


def test_no_text_overlaps_and_all_of_it_is_on_the_figure(session_drawn):
    """(The other figures drawn here are checked the same way.)"""
    _, fig, texts = session_drawn
    assert_apart(texts, fig)


def test_close_trips_and_refusals_get_labels_that_do_not_touch():
    """Five marks within a second: their labels stagger into rows (checked by drawing)."""
    from gunguard.store.queries import Refusal, Telemetry, Trip

    w0 = 1_795_161_600.0
    walls = [w0 + i * 0.1 for i in range(100)]
    telemetry = Telemetry(walls, [2000.0] * 100, [30.0] * 100, [True] * 100, ["a"] * 100)
    telemetry.dose = [i / 1000 for i in range(100)]
    trips = [Trip(i, w0 + 4 + i * 0.1, "overforce", "x", "a", "h", None) for i in range(3)]
    refusals = [Refusal(i, w0 + 4.05 + i * 0.1, 1, "a", "trip_latched", "y") for i in range(2)]
    numbered = rp.marks(trips, refusals)
    report = rp.Report(
        db=Path("x.db"),
        kind="session",
        ident=1,
        origin_wall=w0,
        start_wall=w0,
        end_wall=walls[-1],
        session_hash="h",
        config_source=None,
        config_hash=None,
        limits={},
        treatments=[],
        samples=rp.Samples.since(w0, telemetry),
        trips=[m for m in numbered if m.kind == "trip"],
        refusals=[m for m in numbered if m.kind == "refusal"],
        spans=rp.power_spans(telemetry, None),
    )
    assert [m.label for m in report.marks] == ["T1", "R1", "T2", "R2", "T3"]
    fig = rp.draw(report, UTC)
    texts = drawn_texts(fig)
    assert_apart(texts, fig)
    labels = [(t, b) for t, b in texts if t in ("T1", "T2", "T3", "R1", "R2")]
    assert sorted(t for t, _ in labels) == ["R1", "R2", "T1", "T2", "T3"]  # every one drawn...
    boxes = [b for _, b in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            # ...and none on another
            assert min(a.x1, b.x1) <= max(a.x0, b.x0) or min(a.y1, b.y1) <= max(a.y0, b.y0)


def test_lists_band_minutes_trips_and_refusals(session_drawn):
    report, _, texts = session_drawn
    text = "\n".join(t for t, _ in texts)
    [treatment] = report.treatments
    low, high = rp.treatment_bands(treatment)
    assert (low.label, low.allowed_s, high.label, high.allowed_s) == (
        "<= 2400 ppm",
        300.0,
        "> 2400 ppm",
        120.0,
    )
    row = f"{rp.mmss(low.used_s)} / 5:00    {rp.mmss(high.used_s)} / 2:00  "
    assert row in text and f"{treatment.dose * 100:.1f} %" in text
    assert "T1  08:00:12  overspeed" in text and "08:00:15" in text  # cleared by the reset
    assert "R1  08:00:32  never_allowed" in text and "neck is never treated" in text
    assert "R2  08:00:33  not_allowed" in text and "achilles-left" in text
    assert [m.label for m in report.refusals] == ["R1", "R2"]


def test_clock_times_are_local_and_the_zone_is_named(store, monkeypatch):
    report = rp.load(store, 1)
    kolkata = rp.LocalTime(ZoneInfo("Asia/Kolkata"), "Asia/Kolkata")  # UTC+05:30, no DST
    fig = rp.draw(report, kolkata)
    drawn = drawn_texts(fig)
    assert_apart(drawn, fig)
    texts = [t for t, _ in drawn]
    ticks = [t for t in texts if t.count(":") == 2 and len(t) == 8]
    assert len(ticks) >= 3 and all(t.startswith("13:30:") for t in ticks)  # 08:00 UTC
    assert any("local time (Asia/Kolkata, IST, UTC+05:30)" in t for t in texts)
    assert any(
        t.startswith("gunguard treatment 1: calf-left, Fri 20 Nov 2026, 13:30") for t in texts
    )
    # The machine's zone: $TZ (or /etc/localtime), through the C library.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        here = rp.LocalTime.of_machine()
        assert here.name(report.start_wall) == "America/New_York, EST, UTC-05:00"
        assert here.clock(report.start_wall) == "03:00:01"
    finally:
        monkeypatch.undo()
        time.tzset()
