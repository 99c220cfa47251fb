"""``gunguard report``: stored telemetry as a plot and as numbers.

The daemon's ledger samples rate, force, power, region and dose at 10 Hz while the gun
is active, and once at every power change (:mod:`gunguard.store.ledger`). A report
shows either one treatment (one region's dose window; ``gunguard history`` lists them,
``--last`` is the newest) or one whole daemon session (``--session``: everything from
start to stop, every region). It only ever shows what was recorded:

* the measured rate with the cap and the overspeed trip threshold, the measured force
  with the force limit, and the share of the allowance used (percent), one line per
  region, with the warning (90 %) and the limit (100 %);
* **motor power on**, shaded per region, exactly where the stored samples say so for
  that region (:func:`power_spans`);
* every trip (T1, T2, ...) and refused selection (R1, ...) as a marked line, listed
  below the plot with its reason and detail;
* per treatment, contact minutes used and allowed in each of the guidance's rate bands
  (<= 2400 ppm, above), by the allowance the treatment was judged by
  (:func:`treatment_rows`);
* clock times in the local time zone of the machine drawing it, named on the plot.

In a session the limits are those of the region armed at each moment (step lines).
The limits are not stored with the telemetry, only the config's hash: they come
from ``--config``, else from the shipped config whose hash matches the session's. A
config that does not match is drawn but labelled as such; with no config the plot
has no limit lines rather than guessed ones.

The pieces are small functions so that other reports (a treatment plan's) can reuse
them: :func:`power_spans`, :func:`marks`, :func:`treatment_rows`, :func:`mark_rows`,
and the ``draw_*`` functions, each of which draws one thing on given axes.

The store is opened read-only and never changed. Matplotlib draws off-screen (the
Agg canvas), so this works without a display.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.ceilings import DOSE_WARNING
from gunguard.core.dose import bucket_of
from gunguard.core.limits import RegionLimits
from gunguard.operator.units import BandUse, guidance_bands, mmss, percent
from gunguard.store import treatments as rules
from gunguard.store.ledger import DESELECT, SELECT, TELEMETRY_HZ, default_storage_path
from gunguard.store.queries import (
    Refusal,
    StoreReader,
    Telemetry,
    Treatment,
    Trip,
    open_reader,
)
from gunguard.store.schema import StorageFault

FORMAT = "gunguard-report/1"
EXIT_OK, EXIT_NOT_FOUND, EXIT_CONFIG, EXIT_STORAGE = 0, 1, configfile.EXIT_CONFIG, 4
#: Telemetry shown before a treatment's first and after its last contact.
PAD_S = 5.0
#: Samples further apart than this are not joined: the ledger samples at 10 Hz while
#: the gun is active and once a minute while idle, so a gap means "nothing recorded".
GAP_S = 1.0
#: Power-on is shaded between two samples at most this far apart: while the motor has
#: power the ledger samples every 0.1 s, so a longer gap (a sample more than one and a
#: half periods late) is time with no record.
SAMPLE_GAP_S = 2.5 / TELEMETRY_HZ
#: Treatments, trips and refusals listed under the plot (each); the rest are counted.
MAX_LISTED = 12
#: The figure: 11 in wide; the plots a fixed height, then as many lines as the lists need.
WIDTH_IN = 11.0
LINE_IN = 0.15  # one line of the lists (8 pt monospace, with room)
LIST_CHARS = 145  # characters per line of the lists (8 pt monospace: 10.1 in)
DPI = 100
FONT = 8
RATE_COLOR = "#1f77b4"
FORCE_COLOR = "#2ca02c"
DOSE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
DOSE_COLOR = DOSE_COLORS[0]
LIMIT_COLOR = "#d62728"
WARN_COLOR = "#ff7f0e"
TRIP_COLOR = "#000000"
REFUSAL_COLOR = "#7f7f7f"
#: How far a region's power shading is mixed towards white (its line colour at 0).
SHADE_MIX = 0.78
#: Staggered rows of T1/R1 labels at the top of the rate plot, at most.
LABEL_ROWS = 6
NAN = float("nan")


class ReportError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Samples:
    """Telemetry rows as columns; ``t`` in seconds from the report's origin."""

    t: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    rate_ppm: list[float] = field(default_factory=list)
    force_n: list[float] = field(default_factory=list)
    power: list[bool] = field(default_factory=list)
    dose: list[float | None] = field(default_factory=list)
    region: list[str | None] = field(default_factory=list)

    @classmethod
    def since(cls, origin: float, telemetry: Telemetry) -> Samples:
        """The stored samples, timed from ``origin``."""
        return cls(
            t=[wall - origin for wall in telemetry.wall],
            wall=telemetry.wall,
            rate_ppm=telemetry.rate_ppm,
            force_n=telemetry.force_n,
            power=telemetry.power,
            dose=telemetry.dose,
            region=telemetry.region,
        )


# -- what the record says (no drawing) ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PowerSpan:
    """The motor had power for ``region`` from ``start`` to ``end`` (wall times)."""

    region: str
    start: float
    end: float


def power_spans(
    telemetry: Telemetry | Samples,
    region: str | None,
    cuts: Sequence[float] = (),
    max_gap_s: float = SAMPLE_GAP_S,
) -> list[PowerSpan]:
    """Where the stored samples say the motor had power for ``region`` (None: any).

    ``telemetry`` must be every sample of the time covered, of every region, in time
    order. Each sample with power on in the region counts up to the next sample, when
    that one is at most ``max_gap_s`` later (a longer gap has no record) and

    * is of the same region (power on, or just switched off: the ledger samples every
      power change when it happens); or
    * is of another region or none: then only up to the recorded selection change
      between them.

    ``cuts`` (trips, selections and deselections of any region) end a span: nothing is
    ever shaded across them.
    """
    times = sorted(cuts)
    spans: list[PowerSpan] = []
    wall, power, regions = telemetry.wall, telemetry.power, telemetry.region
    for i in range(len(wall) - 1):
        here = regions[i]
        if not power[i] or here is None or (region is not None and here != region):
            continue
        start, following = wall[i], wall[i + 1]
        if following - start > max_gap_s:
            continue
        k = bisect.bisect_right(times, start)
        cut = times[k] if k < len(times) and times[k] <= following else None
        if regions[i + 1] == here:
            end = following if cut is None else cut
        else:  # the region changed between the two: at its recorded change, if any
            end = start if cut is None else cut
        if end <= start:
            continue
        last = spans[-1] if spans else None
        if last is not None and last.region == here and last.end == start:
            spans[-1] = PowerSpan(here, last.start, end)
        else:
            spans.append(PowerSpan(here, start, end))
    return spans


@dataclass(frozen=True, slots=True)
class Mark:
    """A trip (``T1``...) or a refused selection (``R1``...), as drawn and listed."""

    label: str
    kind: Literal["trip", "refusal"]
    wall: float
    region: str | None
    reason: str
    detail: str
    cleared_wall: float | None = None  # trips: when a reset cleared it (None: latched)


def marks(trips: Sequence[Trip], refusals: Sequence[Refusal]) -> list[Mark]:
    """Trips and refusals, numbered in time order, each kind on its own."""
    out = [
        Mark(f"T{i}", "trip", t.wall, t.region, t.reason, t.detail, t.cleared_wall)
        for i, t in enumerate(trips, 1)
    ]
    out += [
        Mark(f"R{i}", "refusal", r.wall, r.region, r.reason, r.detail)
        for i, r in enumerate(refusals, 1)
    ]
    return sorted(out, key=lambda m: (m.wall, m.kind))


def treatment_bands(t: Treatment) -> list[BandUse]:
    """Contact used and allowed in the guidance's bands, by the treatment's allowance."""
    contact = {bucket_of(r.up_to_ppm): r.contact_s for r in t.rates}
    return guidance_bands(contact, t.allowance)


# -- local time ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalTime:
    """The time zone of the machine drawing the report, and its name."""

    tz: dt.tzinfo
    key: str | None  # the IANA name when known: Europe/Berlin

    @classmethod
    def of_machine(cls) -> LocalTime:
        key = os.environ.get("TZ", "").lstrip(":") or None
        if key is None:
            target = os.path.realpath("/etc/localtime")
            key = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None
        if key is not None:
            try:
                return cls(ZoneInfo(key), key)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        # No IANA name (a bare TZ rule, no /etc/localtime link): the current offset.
        return cls(dt.datetime.now().astimezone().tzinfo or dt.UTC, None)

    def at(self, wall: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(wall, self.tz)

    def clock(self, wall: float) -> str:
        return f"{self.at(wall):%H:%M:%S}"

    def name(self, wall: float) -> str:
        """``Europe/Berlin, CET, UTC+01:00`` (at ``wall``: daylight saving moves it)."""
        when = self.at(wall)
        offset = when.strftime("%z")
        parts = [self.key, when.strftime("%Z"), f"UTC{offset[:3]}:{offset[3:]}"]
        return ", ".join(dict.fromkeys(p for p in parts if p))


_EPOCH_X = float(mdates.date2num(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)))


def to_x(walls: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """Wall times (Unix seconds) as matplotlib date numbers, the plots' x."""
    return np.asarray(walls, dtype=float) / 86400.0 + _EPOCH_X


# -- the report -------------------------------------------------------------------------------
def _treatment_dict(t: Treatment) -> dict[str, Any]:
    bands = treatment_bands(t)
    return {
        "id": t.id,
        "region": t.region,
        "start": rules.iso(t.start_wall),
        "end": rules.iso(t.end_wall),
        "dose": None if t.dose is None else round(t.dose, 4),
        "contact_seconds": round(t.contact_seconds, 3),
        "percussion_seconds": round(t.percussion_seconds, 3),
        "seconds_by_band": [round(b.used_s, 3) for b in bands],
        "bands": [
            {
                "label": b.label,
                "up_to_ppm": b.up_to_ppm,
                "seconds": round(b.used_s, 3),
                "allowed_seconds": round(b.allowed_s, 3),
            }
            for b in bands
        ],
    }


@dataclass
class Report:
    db: Path
    kind: Literal["treatment", "session"]
    ident: int
    origin_wall: float  # t = 0: the treatment's first contact, or the session's start
    start_wall: float
    end_wall: float
    session_hash: str
    config_source: str | None
    config_hash: str | None
    limits: dict[str, RegionLimits]  # for the regions in the report; empty: no config
    treatments: list[Treatment]
    samples: Samples
    trips: list[Mark]
    refusals: list[Mark] = field(default_factory=list)
    spans: list[PowerSpan] = field(default_factory=list)  # motor power on, as recorded

    @property
    def config_matches(self) -> bool:
        return self.config_hash is not None and self.config_hash == self.session_hash

    @property
    def regions(self) -> list[str]:
        """Every region in the report, in order of appearance."""
        seen = [t.region for t in self.treatments] + [r for r in self.samples.region if r]
        return list(dict.fromkeys(seen))

    @property
    def marks(self) -> list[Mark]:
        """Trips and refusals, in time order."""
        return sorted(self.trips + self.refusals, key=lambda m: (m.wall, m.kind))

    def as_dict(self) -> dict[str, Any]:
        s = self.samples
        origin = self.origin_wall
        return {
            "format": FORMAT,
            "db": str(self.db),
            "kind": self.kind,
            "id": self.ident,
            "start": rules.iso(self.start_wall),
            "end": rules.iso(self.end_wall),
            "origin": rules.iso(origin),
            "treatments": [_treatment_dict(t) for t in self.treatments],
            "config": {
                "source": self.config_source,
                "hash": self.config_hash,
                "session_hash": self.session_hash,
                "matches_session": self.config_matches,
            },
            "limits": {
                name: {
                    "cap_ppm": lim.cap_ppm,
                    "trip_ppm": round(lim.trip_ppm, 3),
                    "max_force_n": lim.max_force_n,
                }
                for name, lim in self.limits.items()
            },
            "dose": {"warning": DOSE_WARNING, "limit": 1.0},
            "samples": {
                "t": [round(x, 3) for x in s.t],
                "rate_ppm": s.rate_ppm,
                "force_n": s.force_n,
                "power": s.power,
                "dose": s.dose,
                "region": s.region,
            },
            "power_on": [
                {
                    "region": span.region,
                    "t_start": round(span.start - origin, 3),
                    "t_end": round(span.end - origin, 3),
                }
                for span in self.spans
            ],
            "trips": [
                {
                    "t": round(trip.wall - origin, 3),
                    "label": trip.label,
                    "at": rules.iso(trip.wall),
                    "reason": trip.reason,
                    "detail": trip.detail,
                    "region": trip.region,
                    "cleared_at": None
                    if trip.cleared_wall is None
                    else rules.iso(trip.cleared_wall),
                }
                for trip in self.trips
            ],
            "refusals": [
                {
                    "t": round(r.wall - origin, 3),
                    "label": r.label,
                    "at": rules.iso(r.wall),
                    "reason": r.reason,
                    "detail": r.detail,
                    "region": r.region,
                }
                for r in self.refusals
            ],
            "summary": {
                "samples": len(s.t),
                "max_rate_ppm": max(s.rate_ppm, default=None),
                "max_force_n": max(s.force_n, default=None),
                "trips": [trip.reason for trip in self.trips],
                "refusals": [r.reason for r in self.refusals],
                "power_on_seconds": round(sum(x.end - x.start for x in self.spans), 3),
            },
        }


# -- reading the store ---------------------------------------------------------------------
def load(
    path: Path,
    treatment: int | None = None,
    config: str | None = None,
    *,
    session: int | None = None,
    whole_session: bool = False,
) -> Report:
    """A treatment (None: the newest), or with ``whole_session`` a session (None: the
    newest), with its telemetry; raises :class:`ReportError`."""
    if not path.exists():
        raise ReportError(f"{path}: no such file (has gunguard run with this store?)", EXIT_STORAGE)
    try:
        with open_reader(path) as store:
            if store.schema_version() == 0:
                raise ReportError(f"{path}: nothing recorded yet", EXIT_NOT_FOUND)
            if whole_session:
                return _load_session(store, path, session, config)
            return _load_treatment(store, path, treatment, config)
    except StorageFault as fault:
        raise ReportError(str(fault), EXIT_STORAGE) from None


def _cuts(store: StoreReader, start: float, end: float, trips: Sequence[Trip]) -> list[float]:
    """Where power-on spans end at the latest: trips, and every selection change."""
    changes = store.actions_between(start, end, (SELECT, DESELECT))
    return sorted([t.wall for t in trips] + [a.wall for a in changes])


def _load_treatment(
    store: StoreReader, path: Path, treatment: int | None, config: str | None
) -> Report:
    info = store.last_treatment() if treatment is None else store.treatment(treatment)
    if info is None:
        what = "no treatments recorded yet" if treatment is None else f"no treatment {treatment}"
        raise ReportError(f"{path}: {what} (see gunguard history)", EXIT_NOT_FOUND)
    ran = store.session(info.end_session)
    if ran is None:  # the schema's foreign key rules it out: a damaged store
        raise ReportError(
            f"{path}: treatment {info.id} names session {info.end_session}, which is not stored",
            EXIT_STORAGE,
        )
    window = (info.region, info.start_wall - PAD_S, info.end_wall + PAD_S)
    source, cfg_hash, limits = _limits(config, ran.config_hash, [info.region])
    trips = store.window_trips(*window)
    # Spans are judged on every region's samples: a switch away ends them.
    every = store.telemetry_between(*window[1:])
    cuts = _cuts(store, *window[1:], store.trips_between(*window[1:]))
    return Report(
        db=path,
        kind="treatment",
        ident=info.id,
        origin_wall=info.start_wall,
        start_wall=info.start_wall,
        end_wall=info.end_wall,
        session_hash=ran.config_hash,
        config_source=source,
        config_hash=cfg_hash,
        limits=limits,
        treatments=[info],
        samples=Samples.since(info.start_wall, store.window_telemetry(*window)),
        trips=marks(trips, []),
        refusals=marks([], store.window_refusals(*window)),
        spans=power_spans(every, info.region, cuts),
    )


def _load_session(
    store: StoreReader, path: Path, session: int | None, config: str | None
) -> Report:
    found = store.latest_session() if session is None else store.session(session)
    if found is None:
        what = "no sessions recorded yet" if session is None else f"no session {session}"
        raise ReportError(f"{path}: {what}", EXIT_NOT_FOUND)
    opened = found.opened_wall
    telemetry = store.session_telemetry(found.id)
    samples = Samples.since(opened, telemetry)
    treatments = store.session_treatments(found.id)
    regions = list(dict.fromkeys([t.region for t in treatments] + [r for r in samples.region if r]))
    source, cfg_hash, limits = _limits(config, found.config_hash, regions)
    ends = [w for w in (found.closed_wall, found.newest_wall, *samples.wall[-1:]) if w is not None]
    end = max(ends, default=opened)
    trips = store.session_trips(found.id)
    numbered = marks(trips, store.session_refusals(found.id))
    return Report(
        db=path,
        kind="session",
        ident=found.id,
        origin_wall=opened,
        start_wall=opened,
        end_wall=end,
        session_hash=found.config_hash,
        config_source=source,
        config_hash=cfg_hash,
        limits=limits,
        treatments=treatments,
        samples=samples,
        trips=[m for m in numbered if m.kind == "trip"],
        refusals=[m for m in numbered if m.kind == "refusal"],
        spans=power_spans(telemetry, None, _cuts(store, opened, end, trips)),
    )


def _limits(
    config: str | None, session_hash: str, regions: list[str]
) -> tuple[str | None, str | None, dict[str, RegionLimits]]:
    """The regions' limits from ``config``, else from a shipped config with the session's hash."""
    candidates = [config] if config is not None else configfile.shipped_names()
    for name in candidates:
        try:
            cfg = configfile.load(name)
        except ConfigError:
            if config is not None:
                raise
            continue
        cfg_hash = configfile.config_hash(cfg)
        if config is not None or cfg_hash == session_hash:
            known = resolve_limits(cfg).regions
            return name, cfg_hash, {r: known[r] for r in regions if r in known}
    return None, None, {}


# -- the lists under the plot -----------------------------------------------------------------
def treatment_rows(treatments: Sequence[Treatment], local: LocalTime) -> list[str]:
    """One line per treatment: when, contact, used / allowed per band, share used."""
    bands = [b.label for b in treatment_bands(treatments[0])] if treatments else []
    head = f"{'#':>4}  {'region':<18} {'first - last contact':<21} {'contact':>7}"
    head += "".join(f"  {label:>13}" for label in bands) + f"  {'used':>7}"
    lines = [head]
    for t in treatments[:MAX_LISTED]:
        when = f"{local.clock(t.start_wall)} - {local.clock(t.end_wall)}"
        line = f"{t.id:>4}  {t.region:<18} {when:<21} {mmss(t.contact_seconds):>7}"
        line += "".join(f"  {b.text():>13}" for b in treatment_bands(t))
        lines.append(line + f"  {percent(t.dose):>7}")
    if len(treatments) > MAX_LISTED:
        lines.append(f"      ... and {len(treatments) - MAX_LISTED} more (gunguard history)")
    return lines


def mark_rows(listed: Sequence[Mark], local: LocalTime, width: int = LIST_CHARS) -> list[str]:
    """Trips or refusals, one entry each (wrapped), at most :data:`MAX_LISTED`."""
    if not listed:
        return []
    head = f"{'':>4}  {'at':<8}  {'reason':<17} {'region':<16} "
    lines = [head + (f"{'cleared':<9} " if listed[0].kind == "trip" else "") + "detail"]
    for m in listed[:MAX_LISTED]:
        what = f"{m.label:>4}  {local.clock(m.wall)}  {m.reason:<17} {m.region or '-':<16} "
        if m.kind == "trip":
            cleared = "LATCHED" if m.cleared_wall is None else local.clock(m.cleared_wall)
            what += f"{cleared:<9} "
        wrapped = textwrap.wrap(
            m.detail, width - len(what), max_lines=2, placeholder=" ...", break_on_hyphens=False
        ) or [""]
        lines.append(what + wrapped[0])
        lines += [" " * len(what) + rest for rest in wrapped[1:]]
    if len(listed) > MAX_LISTED:
        lines.append(f"      ... and {len(listed) - MAX_LISTED} more (gunguard history)")
    return lines


def _sections(report: Report, local: LocalTime) -> list[tuple[str, list[str]]]:
    trips = report.trips
    refusals = report.refusals
    return [
        (
            "Treatments: contact used / allowed in each rate band by the treatment's "
            "allowance; used: share of the whole allowance",
            treatment_rows(report.treatments, local) if report.treatments else ["none"],
        ),
        (
            "Trips: the motor's power cut, latched until a reset clears it",
            mark_rows(trips, local) or ["none"],
        ),
        ("Refused selections", mark_rows(refusals, local) or ["none"]),
    ]


# -- drawing: one thing per function ------------------------------------------------------------
def shade_of(color: str) -> tuple[float, float, float]:
    """A region's power shading: its line colour mixed towards white."""
    r, g, b = to_rgb(color)
    return (r + (1 - r) * SHADE_MIX, g + (1 - g) * SHADE_MIX, b + (1 - b) * SHADE_MIX)


def region_colors(regions: Sequence[str]) -> dict[str, str]:
    return {r: DOSE_COLORS[i % len(DOSE_COLORS)] for i, r in enumerate(regions)}


def broken(t: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """``t, y`` with a NaN between samples more than :data:`GAP_S` apart (a gap in the line)."""
    out_t: list[float] = []
    out_y: list[float] = []
    for i, (x, v) in enumerate(zip(t, y, strict=True)):
        if i and x - t[i - 1] > GAP_S:
            out_t.append((x + t[i - 1]) / 2)
            out_y.append(NAN)
        out_t.append(x)
        out_y.append(v)
    return out_t, out_y


def _series(ax: Axes, walls: Sequence[float], values: Sequence[float], **style: Any) -> None:
    """A line over time that leaves gaps where nothing was recorded."""
    w, y = broken(walls, values)
    ax.plot(to_x(w), y, **style)


def draw_power(axes: Sequence[Axes], spans: Sequence[PowerSpan], colors: dict[str, str]) -> None:
    """Shade each recorded power-on span in its region's tint (``gid`` ``power-on``)."""
    for ax in axes:
        for span in spans:
            ax.axvspan(
                *to_x([span.start, span.end]),
                color=shade_of(colors.get(span.region, DOSE_COLOR)),
                zorder=0,
                linewidth=0,
                gid=f"power-on {span.region}",
            )


def _limit_line(ax: Axes, y: float, style: str, label: str, color: str = LIMIT_COLOR) -> None:
    ax.axhline(y, color=color, linestyle=style, linewidth=1.4, zorder=2, label=label)


def _armed_limit(report: Report, attr: str) -> list[float]:
    """Per sample: the armed region's limit ``attr``, NaN while none is armed."""
    out = []
    for region in report.samples.region:
        lim = report.limits.get(region) if region else None
        out.append(getattr(lim, attr) if lim is not None else NAN)
    return out


def draw_limits(rate_ax: Axes, force_ax: Axes, report: Report) -> None:
    """Cap, overspeed threshold and force limit: fixed for a treatment, stepping with the
    armed region in a session."""
    limits = report.limits
    if report.kind == "treatment" and limits:
        (lim,) = limits.values()
        _limit_line(rate_ax, lim.cap_ppm, "--", f"cap {lim.cap_ppm:g} ppm")
        _limit_line(rate_ax, lim.trip_ppm, ":", f"trips above {lim.trip_ppm:.0f} ppm")
        _limit_line(force_ax, lim.max_force_n, "--", f"max {lim.max_force_n:g} N")
        return
    if not limits:
        return
    s = report.samples
    for ax, attr, style, label in (
        (rate_ax, "cap_ppm", "--", "cap (armed region)"),
        (rate_ax, "trip_ppm", ":", "trips above"),
        (force_ax, "max_force_n", "--", "max force (armed region)"),
    ):
        w, y = broken(s.wall, _armed_limit(report, attr))
        ax.plot(
            to_x(w),
            y,
            color=LIMIT_COLOR,
            linestyle=style,
            linewidth=1.4,
            zorder=2,
            drawstyle="steps-post",
            label=label,
        )


def draw_dose(ax: Axes, report: Report, colors: dict[str, str]) -> list[tuple[Any, str]]:
    """Per region the share of its allowance used (percent), as recorded; the warning and
    the limit. Returns the regions' legend entries (line over power shading)."""
    s = report.samples
    entries: list[tuple[Any, str]] = []
    for region in report.regions:
        color = colors[region]
        points = [
            (w, d * 100.0)
            for w, d, r in zip(s.wall, s.dose, s.region, strict=True)
            if r == region and d is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            _series(ax, xs, ys, color=color, linewidth=1.6, zorder=3)
        handle = (Patch(color=shade_of(color)), Line2D([], [], color=color, linewidth=1.6))
        entries.append((handle, region))
    _limit_line(ax, 100.0, "--", "limit 100 %")
    _limit_line(ax, DOSE_WARNING * 100.0, "--", f"warning {DOSE_WARNING * 100:g} %", WARN_COLOR)
    ax.set_ylim(0, 110)
    return entries


def draw_marks(axes: Sequence[Axes], listed: Sequence[Mark], top: float) -> list[Annotation]:
    """A line through every plot at each trip and refusal; its label (T1, R1) at the top
    of the first plot, in staggered rows so that no two labels touch."""
    first = axes[0]
    labels: list[Annotation] = []
    for m in listed:
        trip = m.kind == "trip"
        color = TRIP_COLOR if trip else REFUSAL_COLOR
        for ax in axes:
            ax.axvline(
                to_x(m.wall),
                color=color,
                linestyle="-." if trip else ":",
                linewidth=1.2,
                zorder=4,
            )
        labels.append(
            first.annotate(
                m.label,
                (float(to_x(m.wall)), top),
                xytext=(3, -3),
                textcoords="offset points",
                fontsize=FONT,
                color=color,
                va="top",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=5,
            )
        )
    _stagger(first.figure, labels)  # type: ignore[arg-type]
    return labels


def _stagger(fig: Figure, labels: Sequence[Annotation]) -> None:
    """Move labels down a row while they overlap an earlier one; hide the rest."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Any] = []
    for label in labels:
        for row in range(LABEL_ROWS):
            label.xyann = (3, -3 - row * (FONT + 4))
            box = label.get_window_extent(renderer).expanded(1.0, 1.0).padded(2)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
        else:
            label.set_visible(False)  # still listed under the plot


def local_time_axis(ax: Axes, local: LocalTime, start: float, end: float) -> None:
    """Clock times in the local zone: ``HH:MM:SS`` (``HH:MM`` over an hour)."""
    locator = mdates.AutoDateLocator(tz=local.tz, minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    fmt = "%H:%M:%S" if end - start <= 3600 else "%H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=local.tz))


def _title(report: Report, local: LocalTime) -> str:
    first, last = local.at(report.start_wall), local.at(report.end_wall)
    span = f"{first:%a %d %b %Y, %H:%M:%S} to "
    span += f"{last:%H:%M:%S}" if first.date() == last.date() else f"{last:%a %d %b %Y, %H:%M:%S}"
    span += f" ({local.name(report.start_wall)})"
    if report.kind == "treatment":
        info = report.treatments[0]
        title = f"gunguard treatment {info.id}: {info.region}, {span}"
    else:
        title = f"gunguard session {report.ident}: {span}"
    if not report.limits:
        title += "\nno limit lines: pass --config FILE (the session's config is not shipped)"
    elif not report.config_matches:
        title += f"\nlimits from {report.config_source}, which is NOT the config this ran with"
    return title


def _legend(ax: Axes, entries: list[tuple[Any, str]] | None = None, title: str = "") -> None:
    """Beside the plot, in as many columns as its height needs."""
    handles, names = ax.get_legend_handles_labels()
    if entries:
        handles = [h for h, _ in entries] + handles
        names = [n for _, n in entries] + names
    rows = max(1, int(ax.bbox.height / (FONT * 2.1)))  # entries that fit beside the plot
    ax.legend(
        handles,
        names,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=FONT,
        frameon=False,
        ncol=math.ceil(len(handles) / rows),
        handler_map={tuple: HandlerTuple(ndivide=1)},
        title=title or None,
        title_fontsize=FONT,
    )


@dataclass(frozen=True)
class Layout:
    """Where things go, in inches from the figure's top: the plots keep their size, the
    figure grows with the lists under them."""

    title_lines: int
    list_lines: int  # headings and rows
    lists: int
    plot_in: float = 1.95
    gap_in: float = 0.15

    @property
    def top_in(self) -> float:
        return 0.15 + 0.2 * self.title_lines

    @property
    def lists_in(self) -> float:
        """The first list heading: under the time axis's labels."""
        return self.top_in + 3 * self.plot_in + 2 * self.gap_in + 0.6

    @property
    def height_in(self) -> float:
        return self.lists_in + self.list_lines * LINE_IN + self.lists * 0.1 + 0.15


def plot_axes(fig: Figure, layout: Layout) -> list[Axes]:
    """The three plots (rate, force, allowance used), one time axis, 0.8 in of labels
    on the left and the legends on the right."""
    height = layout.height_in
    axes: list[Axes] = []
    for i in range(3):
        bottom = height - layout.top_in - (i + 1) * layout.plot_in - i * layout.gap_in
        box = (0.8 / WIDTH_IN, bottom / height, 7.35 / WIDTH_IN, layout.plot_in / height)
        axes.append(fig.add_axes(box, sharex=axes[0] if axes else None))
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6, zorder=1)
        ax.tick_params(labelsize=FONT, labelbottom=ax is axes[-1])
    return axes


def draw_lists(fig: Figure, sections: Sequence[tuple[str, list[str]]], layout: Layout) -> None:
    """Each list under its heading, in monospace so its columns line up."""
    height = layout.height_in
    y_in = layout.lists_in
    for heading, rows in sections:
        fig.text(0.3 / WIDTH_IN, 1 - y_in / height, heading, fontsize=9, weight="bold", va="top")
        fig.text(
            0.3 / WIDTH_IN,
            1 - (y_in + LINE_IN * 1.1) / height,
            "\n".join(rows),
            fontsize=FONT,
            family="monospace",
            va="top",
            linespacing=1.3,
        )
        y_in += LINE_IN * (1 + len(rows)) + 0.1


def draw(report: Report, local: LocalTime | None = None) -> Figure:
    """The figure (not yet saved): rate, force and allowance used over local time, the
    recorded power-on spans, limits, trips and refusals, then the lists."""
    local = local or LocalTime.of_machine()
    sections = _sections(report, local)
    title = _title(report, local)
    layout = Layout(
        title_lines=title.count("\n") + 1,
        list_lines=sum(1 + len(rows) for _, rows in sections),
        lists=len(sections),
    )
    fig = Figure(figsize=(WIDTH_IN, layout.height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = plot_axes(fig, layout)
    rate_ax, force_ax, dose_ax = axes
    s = report.samples
    colors = region_colors(report.regions)
    draw_power(axes, report.spans, colors)
    _series(rate_ax, s.wall, s.rate_ppm, color=RATE_COLOR, linewidth=1.6, zorder=3, label="rate")
    _series(force_ax, s.wall, s.force_n, color=FORCE_COLOR, linewidth=1.6, zorder=3, label="force")
    draw_limits(rate_ax, force_ax, report)
    entries = draw_dose(dose_ax, report, colors)
    limits = report.limits
    top = max([*s.rate_ppm, *(lim.trip_ppm for lim in limits.values()), 1.0]) * 1.15
    rate_ax.set_ylim(0, top)
    force_top = max([*s.force_n, *(lim.max_force_n for lim in limits.values()), 1.0])
    force_ax.set_ylim(0, force_top * 1.15)
    begin = min([report.start_wall, *s.wall[:1]])
    finish = max([report.end_wall, *s.wall[-1:]])
    pad = max(1.0, 0.01 * (finish - begin))
    dose_ax.set_xlim(*to_x([begin - pad, finish + pad]))
    local_time_axis(dose_ax, local, begin, finish)
    rate_ax.set_ylabel("rate (ppm)", fontsize=9)
    force_ax.set_ylabel("force (N)", fontsize=9)
    dose_ax.set_ylabel("allowance used (%)", fontsize=9)
    dose_ax.set_xlabel(
        f"local time ({local.name(report.start_wall)}); shaded: motor power on, where the "
        "stored samples say so for that region",
        fontsize=9,
    )
    kinds = {m.kind for m in report.marks}
    keys = [
        (Line2D([], [], color=TRIP_COLOR, linestyle="-.", linewidth=1.2), "T1...: trip"),
        (Line2D([], [], color=REFUSAL_COLOR, linestyle=":", linewidth=1.2), "R1...: refused"),
    ]
    _legend(
        rate_ax, [k for k, kind in zip(keys, ("trip", "refusal"), strict=True) if kind in kinds]
    )
    _legend(force_ax)
    _legend(dose_ax, entries, "region (line: used; shading: power on)")
    draw_marks(axes, report.marks, top)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / layout.height_in, va="top")
    draw_lists(fig, sections, layout)
    return fig


def write_plot(report: Report, path: Path, local: LocalTime | None = None) -> Figure:
    """Draw and save as PNG; returns the figure, whose transforms map data to pixels."""
    fig = draw(report, local)
    fig.savefig(path, format="png", dpi=DPI)
    return fig


# -- the command --------------------------------------------------------------------------------
def _human(report: Report, plot: Path | None) -> list[str]:
    data = report.as_dict()
    lines = [f"{report.kind} {report.ident}: {data['start']} to {data['end']}"]
    for t in report.treatments:
        bands = ", ".join(f"{b.label} {b.text()}" for b in treatment_bands(t))
        lines.append(
            f"  treatment {t.id}: {t.region}, contact {mmss(t.contact_seconds)}, "
            f"used {percent(t.dose)} of the allowance ({bands})"
        )
    trips = ", ".join(data["summary"]["trips"]) or "none"
    refusals = ", ".join(data["summary"]["refusals"]) or "none"
    lines.append(f"  {data['summary']['samples']} telemetry samples; trips: {trips}")
    lines.append(f"  refused: {refusals}")
    lines.append(f"  motor power on (as recorded): {mmss(data['summary']['power_on_seconds'])}")
    if not report.limits:
        lines.append("  no limits: pass --config FILE to draw them")
    elif not report.config_matches:
        lines.append(f"  limits from {report.config_source}: NOT the config this session ran with")
    else:
        lines.append(f"  limits from {report.config_source} (the session's config)")
    if plot is not None:
        lines.append(f"  plot: {plot}")
    return lines


def store_path(db: str | None, config: str | None) -> Path:
    """The store a report reads: ``--db``, else ``storage.path`` of ``--config``, else the
    state directory (raises :class:`ConfigError` for an invalid ``--config``)."""
    if db is not None:
        return Path(db)
    return default_storage_path(configfile.load(config) if config is not None else GunguardConfig())


def report_command(
    db: str | None,
    config: str | None,
    treatment: int | None,
    plot: str | None,
    as_json: bool,
    *,
    session: int | None = None,
    whole_session: bool = False,
) -> int:
    """The command: 0 done; 1 nothing to report; 2 invalid --config; 4 unreadable store."""
    try:
        path = store_path(db, config)
        report = load(path, treatment, config, session=session, whole_session=whole_session)
    except ConfigError as exc:
        print(
            f"gunguard report: invalid configuration ({len(exc.problems)} problem(s)):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except ReportError as exc:
        print(f"gunguard report: {exc}", file=sys.stderr)
        return exc.exit_code
    if not report.samples.t:
        print(
            f"gunguard report: {path}: no telemetry stored for {report.kind} {report.ident}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if plot is not None:
        write_plot(report, Path(plot))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, allow_nan=False))
    else:
        print("\n".join(_human(report, Path(plot) if plot else None)))
    return EXIT_OK
